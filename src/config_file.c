/* config_file — reading the configuration file (size bound, NUL check, errors named by the
 * path) and applying it with its folder as the base of relative paths; see
 * include/telebridge/config.h. */
#include "telebridge/config.h"

#include "config_internal.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

#define CFG_FILE_MAX (1024 * 1024) /* a larger config file is refused */

static int fail_errno(char *err, size_t errlen, const char *key, int errnum)
{
    char msg[TB_CONFIG_ERR_LEN];
    if (strerror_r(errnum, msg, sizeof(msg)) != 0)
        snprintf(msg, sizeof(msg), "error %d", errnum);
    return config_fail(err, errlen, key, "%s", msg);
}

/* The file as a NUL-terminated heap string of at most CFG_FILE_MAX bytes, or NULL + err. */
static char *read_file(const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t n;
    int rc = tb_read_file(path, CFG_FILE_MAX, &buf, &n);
    if (rc == -EFBIG)
        config_fail(err, errlen, path, "larger than %d bytes", CFG_FILE_MAX);
    else if (rc == -ENOMEM)
        config_fail(err, errlen, path, "out of memory");
    else if (rc)
        fail_errno(err, errlen, path, -rc);
    else if (memchr(buf, '\0', n))
        config_fail(err, errlen, path, "contains a NUL byte");
    else
        return buf;
    free(buf);
    return NULL;
}

int tb_config_load_file(tb_config_t *cfg, const char *path, char *err, size_t errlen)
{
    char reason[TB_CONFIG_ERR_LEN];
    char *text = NULL;
    char *dir_copy = NULL; /* dirname() may modify its argument */
    char *path_copy = NULL;
    int rc = -1;
    if (!path)
        return config_fail(err, errlen, NULL, "no config file given");
    if (!(text = read_file(path, err, errlen)))
        goto out;
    if (!(dir_copy = strdup(path)) || !(path_copy = strdup(path))) {
        config_fail(err, errlen, path, "out of memory");
        goto out;
    }
    free(cfg->path);
    cfg->path = path_copy;
    path_copy = NULL;
    rc = tb_config_apply_json(cfg, text, dirname(dir_copy), reason, sizeof(reason));
    if (rc != 0)
        config_fail(err, errlen, path, "%s", reason);
out:
    free(text);
    free(dir_copy);
    free(path_copy);
    return rc;
}
