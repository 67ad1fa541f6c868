/* lazyvol: S3 backend — placeholder until the S3 client lands. */
#include <config.h>
#include <errno.h>
#include "err.h"
#include "store-impl.h"

struct store *
store_s3_open (const struct store_config *cfg)
{
  err_set (ENOTSUP, "the s3 backend is not built yet");
  return NULL;
}
