/* Internal helpers shared by the recorders. */
#ifndef QES_PIPELINE_REC_INT_H
#define QES_PIPELINE_REC_INT_H

/* fsync the directory holding path, so that a new file's name survives a
 * crash too.  Returns 0, or -1 with errno (file systems that cannot sync a
 * directory count as success). */
int qes__fsync_dir_of(const char *path);

#endif
