//! Other views of one converger, sharing its group directory and attribute
//! knowledge: under a lease, recording (plans, dry runs), observed (sync),
//! and the handle that makes it follow a target profile.

use super::Converger;

impl Converger {
    /// This converger for one attempt under a lease: every write it makes
    /// is sent only while `held` says the lease is still held, and fails
    /// with [`ApplyError::LeaseLost`](super::ApplyError::LeaseLost) otherwise (the check is in the client).
    pub fn under(&self, held: crate::lease::Held) -> Self {
        let client = self.client.guarded(held);
        Self { client, groups: self.groups.clone(), support: self.support.clone(), ..*self }
    }

    /// This converger keeping its writes in `recorder` instead of sending
    /// them (a plan, a dry run); reads still go to the app.
    pub fn recording(&self, recorder: std::sync::Arc<crate::client::Recorder>) -> Self {
        let client = self.client.recording(recorder);
        Self { client, groups: self.groups.clone(), support: self.support.clone(), ..*self }
    }

    /// This converger noting every request it sends in `steps`.
    pub fn observed(&self, steps: std::sync::Arc<crate::client::Steps>) -> Self {
        let client = self.client.observed(steps);
        Self { client, groups: self.groups.clone(), support: self.support.clone(), ..*self }
    }

    /// What makes this converger (and its clones) follow a target profile.
    pub(crate) fn adopter(&self) -> crate::profile::Adopter {
        crate::profile::Adopter {
            client: self.client.clone(),
            groups: self.groups.clone(),
            support: self.support.clone(),
        }
    }
}
