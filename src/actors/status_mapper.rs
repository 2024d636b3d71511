//! StatusMapper: translates native statuses to canonical ones and back, by the
//! mapping table loaded once from mappings.toml. It never guesses: a value the table
//! does not know comes back as an error naming it.

use std::sync::Arc;

use actix::prelude::*;

use crate::domain::{
    CanonicalStatus, InboundMapping, MappingError, MappingTable, NativeStatus, OutboundNative,
    SystemId,
};

pub struct StatusMapper {
    table: Arc<MappingTable>,
}

impl StatusMapper {
    pub fn new(table: Arc<MappingTable>) -> Self {
        StatusMapper { table }
    }
}

impl Actor for StatusMapper {
    type Context = Context<Self>;
}

/// Maps native statuses (with their Linear team or GitHub repository) to canonical sets,
/// in order.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Result<InboundMapping, MappingError>>")]
pub struct MapInbound(pub Vec<(NativeStatus, Option<String>)>);

/// The one native value a canonical status is written as in a system.
#[derive(Message, Debug)]
#[rtype(result = "OutboundNative")]
pub struct MapOutbound {
    pub system: SystemId,
    pub status: CanonicalStatus,
    pub project: Option<String>,
    /// A GitHub Projects v2 item rather than an issue or pull request.
    pub project_item: bool,
}

impl Handler<MapInbound> for StatusMapper {
    type Result = MessageResult<MapInbound>;

    fn handle(&mut self, msg: MapInbound, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            msg.0
                .iter()
                .map(|(native, project)| self.table.inbound(native, project.as_deref()))
                .collect(),
        )
    }
}

impl Handler<MapOutbound> for StatusMapper {
    type Result = MessageResult<MapOutbound>;

    fn handle(&mut self, msg: MapOutbound, _: &mut Context<Self>) -> Self::Result {
        MessageResult(if msg.project_item {
            self.table
                .project_option_for(msg.status, msg.project.as_deref())
        } else {
            self.table
                .outbound_for(msg.system, msg.status, msg.project.as_deref())
        })
    }
}
