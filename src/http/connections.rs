//! The budgets of long-lived connections on this replica. Authenticated WebSockets and
//! SSE streams share `ws.max_connections`; a WebSocket that has not authenticated yet
//! holds a slot of a separate, small budget (`ws.max_unauthenticated`, and
//! `ws.max_unauthenticated_per_address` per source address) instead, so silent sockets
//! can never lock an authenticated client out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::IntGauge;

#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    gauge: IntGauge,
    unauthenticated: Mutex<Unauthenticated>,
    unauthenticated_gauge: IntGauge,
}

#[derive(Debug, Default)]
struct Unauthenticated {
    total: usize,
    /// `None`: a peer whose address is unknown; those share one allowance.
    by_address: HashMap<Option<IpAddr>, usize>,
}

/// Which unauthenticated budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    Address,
}

impl Connections {
    pub fn new(gauge: IntGauge, unauthenticated_gauge: IntGauge) -> Self {
        Connections {
            open: AtomicUsize::new(0),
            gauge,
            unauthenticated: Mutex::default(),
            unauthenticated_gauge,
        }
    }

    /// Takes an authenticated slot unless `max` are taken.
    pub fn acquire(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| {
                self.gauge.inc();
                Slot(self.clone())
            })
    }

    /// Takes a slot for a connection yet to authenticate, within both of its limits.
    pub fn acquire_unauthenticated(
        self: &Arc<Self>,
        address: Option<IpAddr>,
        max_total: usize,
        max_per_address: usize,
    ) -> Result<UnauthenticatedSlot, Refused> {
        let mut u = self.lock();
        if u.total >= max_total {
            return Err(Refused::Total);
        }
        let from_address = u.by_address.entry(address).or_default();
        if *from_address >= max_per_address {
            if *from_address == 0 {
                u.by_address.remove(&address);
            }
            return Err(Refused::Address);
        }
        *from_address += 1;
        u.total += 1;
        self.unauthenticated_gauge.inc();
        Ok(UnauthenticatedSlot {
            connections: self.clone(),
            address,
        })
    }

    /// Authenticated connections open.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    // A panic while holding the lock leaves the counts consistent (each update is one
    // step), so a poisoned lock is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Unauthenticated> {
        self.unauthenticated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One authenticated slot, given back when the connection ends.
#[derive(Debug)]
pub struct Slot(Arc<Connections>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

/// One unauthenticated slot, given back when the connection authenticates or ends.
#[derive(Debug)]
pub struct UnauthenticatedSlot {
    connections: Arc<Connections>,
    address: Option<IpAddr>,
}

impl Drop for UnauthenticatedSlot {
    fn drop(&mut self) {
        let mut u = self.connections.lock();
        u.total -= 1;
        if let Some(n) = u.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                u.by_address.remove(&self.address);
            }
        }
        self.connections.unauthenticated_gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections() -> Arc<Connections> {
        let gauge = |n: &str| IntGauge::new(n, "test").unwrap();
        Arc::new(Connections::new(gauge("a"), gauge("u")))
    }

    #[test]
    fn unauthenticated_slots_are_limited_in_all_and_per_address_and_given_back() {
        let c = connections();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let first = c.acquire_unauthenticated(a, 3, 2).unwrap();
        let _second = c.acquire_unauthenticated(a, 3, 2).unwrap();
        assert_eq!(
            c.acquire_unauthenticated(a, 3, 2).unwrap_err(),
            Refused::Address
        );
        let _third = c.acquire_unauthenticated(b, 3, 2).unwrap();
        assert_eq!(
            c.acquire_unauthenticated(None, 3, 2).unwrap_err(),
            Refused::Total
        );
        drop(first);
        assert!(c.acquire_unauthenticated(a, 3, 2).is_ok());
        // They never touch the authenticated budget.
        assert_eq!(c.count(), 0);
        let slot = c.acquire(1).unwrap();
        assert!(c.acquire(1).is_none());
        drop(slot);
        assert!(c.acquire(1).is_some());
    }

    #[test]
    fn an_address_with_no_slot_left_keeps_no_entry() {
        let c = connections();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        assert_eq!(
            c.acquire_unauthenticated(a, 5, 0).unwrap_err(),
            Refused::Address
        );
        assert!(c.lock().by_address.is_empty());
        let slot = c.acquire_unauthenticated(a, 5, 1).unwrap();
        drop(slot);
        assert!(c.lock().by_address.is_empty());
        assert_eq!(c.lock().total, 0);
    }
}
