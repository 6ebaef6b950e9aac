//! InferenceObjectives of the pool: their priorities decide which requests may be shed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::kube::resources::POOL_GROUP_V1;
use crate::kube::resources::v1alpha2::InferenceObjective;
use epp_core::datastore::{Datastore, Objective};

/// How long to wait before retrying after the API refused the watch (missing CRD or RBAC).
const REFUSED_RETRY: Duration = Duration::from_secs(60);

/// The objective as the datastore keeps it, if it belongs to this pool (v1.0.1 matches
/// `poolRef.name` and `poolRef.group`, defaulting the group to the v1 pool's).
pub fn for_pool(
    objective: &InferenceObjective,
    pool_name: &str,
    pool_group: &str,
) -> Option<Objective> {
    let reference = &objective.spec.pool_ref;
    let group = reference.group.as_deref().unwrap_or(POOL_GROUP_V1);
    (reference.name == pool_name && group == pool_group).then(|| Objective {
        name: objective.metadata.name.clone().unwrap_or_default(),
        priority: objective.spec.priority.unwrap_or(0),
    })
}

/// Keeps the datastore's objectives equal to the pool's. A refused watch (the CRD is not
/// installed, or RBAC forbids it) logs one warning and is retried quietly: objectives are
/// optional and never keep the EPP unready.
pub async fn watch_objectives(
    api: Api<InferenceObjective>,
    pool_name: String,
    pool_group: String,
    datastore: Arc<Datastore>,
) {
    let mut warned = false;
    loop {
        let mut events = watcher::watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut relist: Vec<Objective> = Vec::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Init) => relist.clear(),
                Ok(Event::InitApply(o)) => relist.extend(for_pool(&o, &pool_name, &pool_group)),
                Ok(Event::InitDone) => datastore.replace_objectives(std::mem::take(&mut relist)),
                Ok(Event::Apply(o)) => match for_pool(&o, &pool_name, &pool_group) {
                    Some(objective) => datastore.set_objective(objective),
                    // Re-pointed at another pool: it no longer applies here.
                    None => {
                        datastore.remove_objective(o.metadata.name.as_deref().unwrap_or_default())
                    }
                },
                Ok(Event::Delete(o)) => {
                    datastore.remove_objective(o.metadata.name.as_deref().unwrap_or_default())
                }
                Err(e) if is_refused(&e) => {
                    if !warned {
                        warned = true;
                        tracing::warn!(error = %e, "cannot watch InferenceObjectives (CRD missing or RBAC); every request gets priority 0 until they can be read");
                    }
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "InferenceObjective watch error; retrying"),
            }
        }
        tokio::time::sleep(REFUSED_RETRY).await;
    }
}

/// 403 (no permission) and 404 (no such resource) will not heal by retrying fast.
fn is_refused(error: &watcher::Error) -> bool {
    let api_error = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        watcher::Error::WatchError(status) => Some(status.code),
        _ => None,
    };
    matches!(api_error, Some(403 | 404))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::v1alpha2::{InferenceObjectiveSpec, PoolObjectReference};

    fn objective(
        name: &str,
        priority: Option<i32>,
        pool: &str,
        group: Option<&str>,
    ) -> InferenceObjective {
        let mut o = InferenceObjective::new(
            name,
            InferenceObjectiveSpec {
                priority,
                pool_ref: PoolObjectReference {
                    group: group.map(str::to_owned),
                    kind: None,
                    name: pool.into(),
                },
            },
        );
        o.metadata.namespace = Some("default".into());
        o
    }

    #[test]
    fn pool_matching_and_default_priority() {
        let v1 = POOL_GROUP_V1;
        let cases = [
            (objective("a", Some(2), "pool", None), Some(2)),
            (objective("b", None, "pool", Some(v1)), Some(0)),
            (objective("c", Some(-1), "pool", Some(v1)), Some(-1)),
            (objective("d", Some(1), "other", None), None),
            (
                objective("e", Some(1), "pool", Some("inference.networking.x-k8s.io")),
                None,
            ),
        ];
        for (o, expected) in cases {
            let name = o.metadata.name.clone();
            assert_eq!(
                for_pool(&o, "pool", v1).map(|o| o.priority),
                expected,
                "{name:?}"
            );
        }
        let x = objective("x", Some(3), "pool", Some("inference.networking.x-k8s.io"));
        assert_eq!(
            for_pool(&x, "pool", "inference.networking.x-k8s.io").map(|o| o.priority),
            Some(3)
        );
    }
}
