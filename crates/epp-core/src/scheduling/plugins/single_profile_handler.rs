//! `single-profile-handler`: runs the one profile and makes it primary.

use std::sync::Arc;

use crate::scheduling::registry::{PluginContext, PluginError, PluginRoles};
use crate::scheduling::{
    ProfileHandler, ProfileRun, SchedulingError, SchedulingProfile, SchedulingResult,
};

pub const TYPE: &str = "single-profile-handler";

/// v1.0.1 `SingleProfileHandler`: picks every profile on the first call and none after;
/// the result must be exactly one run, and a run that found no endpoint fails the request
/// (`failed to run scheduler profile '<name>'`, which clients see as 429). Unlike v1.0.1,
/// a config with several profiles is rejected at load time instead of failing each request.
#[derive(Debug, Default)]
pub struct SingleProfileHandler;

pub fn factory(_: &mut PluginContext<'_>) -> Result<PluginRoles, PluginError> {
    Ok(PluginRoles::profile_handler(Arc::new(SingleProfileHandler)))
}

impl ProfileHandler for SingleProfileHandler {
    fn pick_profiles(&self, profiles: &[SchedulingProfile], runs: &[ProfileRun]) -> Vec<usize> {
        if runs.is_empty() {
            (0..profiles.len()).collect()
        } else {
            Vec::new()
        }
    }

    fn process_results(&self, runs: Vec<ProfileRun>) -> Result<SchedulingResult, SchedulingError> {
        let [run] = runs.as_slice() else {
            return Err(SchedulingError::Handler(format!(
                "single profile handler is intended to be used with a single profile, but {} profiles ran",
                runs.len()
            )));
        };
        if run.targets.as_ref().is_none_or(|t| t.is_empty()) {
            return Err(SchedulingError::ProfileFailed {
                profile: Arc::clone(&run.profile_name),
            });
        }
        Ok(SchedulingResult { runs, primary: 0 })
    }

    fn validate_profiles(&self, profiles: &[SchedulingProfile]) -> Result<(), String> {
        match profiles.len() {
            1 => Ok(()),
            n => Err(format!(
                "works with exactly one scheduling profile, but the config has {n}; \
                 use a multi-profile handler or keep one profile"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::fixtures::TestEndpoint;

    fn run(targets: Option<usize>) -> ProfileRun {
        ProfileRun {
            profile: 0,
            profile_name: Arc::from("default"),
            targets: targets.map(|n| {
                (0..n)
                    .map(|i| TestEndpoint::new(&format!("10.0.0.{}:8000", i + 1)).build())
                    .collect()
            }),
        }
    }

    #[test]
    fn one_run_is_primary() {
        let result = SingleProfileHandler
            .process_results(vec![run(Some(1))])
            .expect("ok");
        assert_eq!(result.primary_targets().len(), 1);
        assert_eq!(result.primary_profile(), Some("default"));
    }

    #[test]
    fn failed_run_names_the_profile() {
        let err = SingleProfileHandler
            .process_results(vec![run(None)])
            .expect_err("fails");
        assert_eq!(err.to_string(), "failed to run scheduler profile 'default'");
        assert!(
            SingleProfileHandler
                .process_results(vec![run(Some(0))])
                .is_err()
        );
        assert!(SingleProfileHandler.process_results(vec![]).is_err());
    }

    #[test]
    fn picks_all_once() {
        assert!(
            SingleProfileHandler
                .pick_profiles(&[], &[run(Some(1))])
                .is_empty()
        );
    }
}
