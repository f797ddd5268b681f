/*
 * maintenance.c — the writer's periodic maintenance (see maintenance.h).
 *
 * Every step takes the tick's one time, so a tick is one consistent
 * moment; the step order is the order the server has always used.
 */
#include "core/blob.h"
#include "core/maintenance.h"
#include "core/feed.h"
#include "core/session.h"
#include "core/snapshot.h"
#include "core/streamrules.h"
#include "core/subscription.h"

#define IDEM_PURGE_BATCH 1000 /* Idempotency-Key records purged per tick at most */
#define FEED_TRIM_BATCH  5000 /* feed events looked at per tick at most */
#define BLOB_GC_BATCH    32   /* blobs and staged uploads collected per tick at most */

int parley_maintenance_tick(parley_db_t *db, const parley_maintenance_cfg_t *cfg, int64_t now,
                            parley_wakeset_t *wake)
{
    int purged = 0;
    int rc = parley_streamrules_expire(db, now, wake);
    if (rc == 0)
        rc = parley_session_expire_leases(db, now, wake);
    if (rc == 0)
        rc = parley_snapshot_expire(db, now, wake);
    if (rc == 0)
        rc = parley_subscription_expire_leases(db, now, wake);
    if (rc == 0)
        rc = parley_db_idem_purge(db, now - cfg->idempotency_ttl_s * 1000, IDEM_PURGE_BATCH,
                                  &purged);
    if (rc == 0 && cfg->feed_retention_s > 0)
        rc = parley_feed_trim(db, now - cfg->feed_retention_s * 1000, FEED_TRIM_BATCH, &purged);
    if (rc == 0 && cfg->blob_grace_s > 0)
        rc = parley_blob_collect(db, now, cfg->blob_grace_s * 1000, BLOB_GC_BATCH, wake, &purged);
    return rc;
}
