//! ConflictResolver: decides what an update does to an entity (apply, no-op, stale,
//! conflict, reject) under the configured policy. The rules are the pure
//! `domain::decide`; this actor owns the policy and answers one decision per message.

use actix::prelude::*;

use crate::domain::{decide, Decision, EntitySnapshot, Incoming, Policy};

pub struct ConflictResolver {
    policy: Policy,
}

impl ConflictResolver {
    pub fn new(policy: Policy) -> Self {
        ConflictResolver { policy }
    }
}

impl Actor for ConflictResolver {
    type Context = Context<Self>;
}

/// Decide one update against the entity's state as it is now (`None`: not yet created).
#[derive(Message, Debug)]
#[rtype(result = "Decision")]
pub struct Resolve {
    pub current: Option<EntitySnapshot>,
    pub incoming: Incoming,
}

impl Handler<Resolve> for ConflictResolver {
    type Result = MessageResult<Resolve>;

    fn handle(&mut self, msg: Resolve, _: &mut Context<Self>) -> Self::Result {
        MessageResult(decide(msg.current.as_ref(), &msg.incoming, &self.policy))
    }
}
