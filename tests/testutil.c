#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *qes_test_refdata(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/../shared/refdata", QES_SOURCE_DIR);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    return path;
}

const char *qes_test_tmpdir(void)
{
    static char path[4096];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/qes-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

char *qes_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int qes_test_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

int qes_test_run(const char *args, char **out, char **err)
{
    char dir[] = "/tmp/qes-run-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char o[4200], e[4200];
    snprintf(o, sizeof o, "%s/out", dir);
    snprintf(e, sizeof e, "%s/err", dir);
    size_t len = strlen(args) + 3 * sizeof o + 64;
    char *cmd = malloc(len);
    if (!cmd)
        return -1;
    snprintf(cmd, len, "'%s' %s >'%s' 2>'%s' </dev/null", QES_EXE, args, o, e);
    int st = system(cmd);
    free(cmd);
    if (out)
        *out = qes_test_slurp(o, NULL);
    if (err)
        *err = qes_test_slurp(e, NULL);
    unlink(o);
    unlink(e);
    rmdir(dir);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}
