/*
 * bench_lockin: the lock-in kernel benchmarks of `qes bench` as a stand-alone
 * program.  usage: bench_lockin [--quick] [--json FILE]
 * Exit status: 0 done, 1 failure, 2 usage error.
 */
#include "bench/bench.h"
#include "common/err.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int quick = 0;
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs("usage: bench_lockin [--quick] [--json FILE]\n", stdout);
            return 0;
        } else {
            fprintf(stderr,
                    "bench_lockin: unexpected argument %s\n"
                    "usage: bench_lockin [--quick] [--json FILE]\n",
                    argv[i]);
            return 2;
        }
    }
    int rc = qes_bench_main(quick, json, stdout);
    if (rc) {
        fprintf(stderr, "bench_lockin: %s\n", qes_strerror(rc));
        return 1;
    }
    return 0;
}
