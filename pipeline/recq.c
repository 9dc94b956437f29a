#include "pipeline/recq.h"
#include "common/err.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long the queue may stay idle before the sinks are asked to commit
 * what they hold (an idle live run must not keep a batch open). */
#define QES_RECQ_IDLE_MS 250

struct item {
    int is_summary;
    union {
        struct qes_block_rec b;
        struct qes_summary_rec s;
    } u;
};

struct qes_recq {
    struct qes_recorder **recs;
    size_t n_recs;
    const struct qes_run_rec *run;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t nonempty, nonfull;
    struct item *items;
    size_t cap, head, count;
    int done; /* producer finished */
    int rc;   /* first sink error */
    char errmsg[8192];
};

static void *consumer(void *arg)
{
    struct qes_recq *q = arg;
    int dirty = 0; /* records written since the last flush */
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->count == 0 && !q->done) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += QES_RECQ_IDLE_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            int w = pthread_cond_timedwait(&q->nonempty, &q->mu, &ts);
            if (w == ETIMEDOUT && dirty && q->count == 0 && !q->done) {
                pthread_mutex_unlock(&q->mu);
                int rc = 0;
                for (size_t i = 0; i < q->n_recs && !rc; i++) {
                    struct qes_recorder *r = q->recs[i];
                    if (r->ops->flush)
                        rc = r->ops->flush(r);
                    if (rc)
                        snprintf(q->errmsg, sizeof q->errmsg, "%s",
                                 r->errmsg[0] ? r->errmsg : qes_strerror(rc));
                }
                pthread_mutex_lock(&q->mu);
                dirty = 0;
                if (rc) {
                    q->rc = rc;
                    goto stop;
                }
            }
        }
        if (q->count == 0 && q->done)
            break;
        /* write the item at the head outside the lock; the producer only
         * appends behind it */
        struct item *it = &q->items[q->head];
        pthread_mutex_unlock(&q->mu);
        int rc = 0;
        for (size_t i = 0; i < q->n_recs && !rc; i++) {
            struct qes_recorder *r = q->recs[i];
            rc = it->is_summary ? r->ops->summary(r, q->run, &it->u.s)
                                : r->ops->block(r, q->run, &it->u.b);
            if (rc)
                snprintf(q->errmsg, sizeof q->errmsg, "%s",
                         r->errmsg[0] ? r->errmsg : qes_strerror(rc));
        }
        pthread_mutex_lock(&q->mu);
        q->head = (q->head + 1) % q->cap;
        q->count--;
        dirty = 1;
        pthread_cond_signal(&q->nonfull);
        if (rc) {
            q->rc = rc;
            break;
        }
    }
stop:
    /* on error: stop consuming; wake a producer waiting for room */
    pthread_cond_broadcast(&q->nonfull);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int qes_recq_start(struct qes_recorder **recs, size_t n_recs, const struct qes_run_rec *run,
                   size_t cap, struct qes_recq **out)
{
    *out = NULL;
    if (cap < 2)
        return QES_EINVAL;
    struct qes_recq *q = calloc(1, sizeof *q);
    if (!q)
        return QES_ENOMEM;
    q->items = malloc(cap * sizeof *q->items);
    if (!q->items) {
        free(q);
        return QES_ENOMEM;
    }
    q->recs = recs;
    q->n_recs = n_recs;
    q->run = run;
    q->cap = cap;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    pthread_cond_init(&q->nonfull, NULL);
    if (pthread_create(&q->thread, NULL, consumer, q)) {
        pthread_cond_destroy(&q->nonfull);
        pthread_cond_destroy(&q->nonempty);
        pthread_mutex_destroy(&q->mu);
        free(q->items);
        free(q);
        return QES_EIO;
    }
    *out = q;
    return 0;
}

static int push(struct qes_recq *q, int is_summary, const void *rec, char *err, size_t errlen)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && !q->rc)
        pthread_cond_wait(&q->nonfull, &q->mu);
    int rc = q->rc;
    if (rc) {
        qes_errf(err, errlen, "%s", q->errmsg);
    } else {
        struct item *it = &q->items[(q->head + q->count) % q->cap];
        it->is_summary = is_summary;
        if (is_summary)
            it->u.s = *(const struct qes_summary_rec *)rec;
        else
            it->u.b = *(const struct qes_block_rec *)rec;
        q->count++;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int qes_recq_block(struct qes_recq *q, const struct qes_block_rec *b, char *err, size_t errlen)
{
    return push(q, 0, b, err, errlen);
}

int qes_recq_summary(struct qes_recq *q, const struct qes_summary_rec *s, char *err, size_t errlen)
{
    return push(q, 1, s, err, errlen);
}

int qes_recq_finish(struct qes_recq *q, char *err, size_t errlen)
{
    if (!q)
        return 0;
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    int rc = q->rc;
    if (rc)
        qes_errf(err, errlen, "%s", q->errmsg);
    pthread_cond_destroy(&q->nonfull);
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->mu);
    free(q->items);
    free(q);
    return rc;
}
