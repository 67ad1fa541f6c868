/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvolctl: lazyvold's JSON replies as text for people: aligned
 * tables, sizes in IEC units, times relative to now.
 *
 * Every function takes a reply as lazyvold sent it and tolerates a field
 * that is missing or null (it shows "-"), so that a newer or older
 * lazyvold never makes lazyvolctl fail to print.
 */
#ifndef LAZYVOLCTL_SHOW_H
#define LAZYVOLCTL_SHOW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#define SHOW_BUF 64

/* The string field KEY of object O, or NULL if it is missing, null or
 * not a string.
 */
const char *show_str (json_object *o, const char *key);
/* The integer field KEY of O, or 0 if it is missing or not a number. */
uint64_t show_u64 (json_object *o, const char *key);
/* The number field KEY of O, or 0 if it is missing or not a number. */
double show_f64 (json_object *o, const char *key);
/* The boolean field KEY of O (false if missing). */
bool show_bool (json_object *o, const char *key);

/* N bytes in IEC units into BUF: "512 B", "4 MiB", "1.5 GiB". */
const char *show_bytes (uint64_t n, char buf[SHOW_BUF])
  __attribute__ ((__nonnull__));
/* SECS as a short duration into BUF: "6 s", "3 min 20 s", "2 h 5 min". */
const char *show_duration (double secs, char buf[SHOW_BUF])
  __attribute__ ((__nonnull__));
/* The UTC time ISO ("2026-11-21T10:00:00Z") relative to now into BUF:
 * "just now", "3 min ago", "2 days ago"; ISO itself if it does not
 * parse.
 */
const char *show_ago (const char *iso, char buf[SHOW_BUF])
  __attribute__ ((__nonnull__));

/* A reply of each kind, printed to stdout. */
void show_status (json_object *status) __attribute__ ((__nonnull__));
void show_list (json_object *reply) __attribute__ ((__nonnull__));
void show_snapshots (json_object *reply) __attribute__ ((__nonnull__));
void show_health (json_object *reply) __attribute__ ((__nonnull__));
void show_fsck (json_object *reply) __attribute__ ((__nonnull__));
/* The objects of gc's reply (or of fsck's "unreferenced"), their count
 * and bytes, followed by HINT if there are any; its unfinished uploads
 * and their count, followed by HINT; what was kept.
 */
void show_unused (json_object *reply, const char *hint)
  __attribute__ ((__nonnull__ (2)));

#endif /* LAZYVOLCTL_SHOW_H */
