/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright (C) 2026 The lazyvol Authors.  See COPYING.
 */
/* lazyvol: the control protocol's command names (see protocol.h). */
#include <config.h>

#include <assert.h>
#include <string.h>

#include "protocol.h"

static const char *const names[CMD_COUNT] = {
#define PROTOCOL_NAME(name) #name,
  PROTOCOL_COMMANDS (PROTOCOL_NAME)
#undef PROTOCOL_NAME
};

const char *
protocol_cmd_name (enum protocol_cmd cmd)
{
  assert (cmd < CMD_COUNT);
  return names[cmd];
}

int
protocol_cmd_parse (const char *name)
{
  for (int i = 0; i < CMD_COUNT; i++)
    if (strcmp (names[i], name) == 0)
      return i;
  return -1;
}
