//! The workspace's one policy for poisoned locks.
//!
//! A `std::sync` lock is poisoned when a thread panicked while holding it. The state behind it
//! may then be half-updated and break the invariants every other holder relies on; the
//! scheduler's and the namespace's pair assertions panic exactly when they find such a break.
//! Carrying on would risk answers that look right and are not (a second commit of a task, a
//! replica counted twice), and letting every later holder panic in turn would leave a daemon
//! that is alive but answers nothing. So the process ends at once: a daemon is restarted and
//! rebuilds its state from what is durable (the WAL, job records, replicas on disk), the path
//! every crash already takes and the crash tests check. No lock in the workspace holds user
//! code (mappers, reducers) while locked, so a user's panic never reaches this.
//!
//! Every `Mutex` and `RwLock` in the crates' sources is taken through [`lock`], [`read`],
//! [`write`] or [`into_inner`]; nothing calls `.lock().unwrap()` or recovers the guard with
//! `PoisonError::into_inner`. (Integration tests that take turns on a shared lock recover it
//! instead: one failed test must not end the others in its binary.)

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, ending the process if a panicking thread poisoned it (see the module docs).
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(poisoned)
}

/// Takes `l` for reading, ending the process if it is poisoned (see the module docs).
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(poisoned)
}

/// Takes `l` for writing, ending the process if it is poisoned (see the module docs).
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(poisoned)
}

/// The value inside `m`, ending the process if it is poisoned (see the module docs).
pub fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(poisoned)
}

fn poisoned<G>(_: PoisonError<G>) -> G {
    // The panic that poisoned the lock has already printed its message and location.
    tracing::error!("a lock was poisoned by a thread that panicked while holding it; exiting");
    eprintln!("fatal: a lock was poisoned by a thread that panicked while holding it");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_locks_are_taken() {
        let m = Mutex::new(1);
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
        let l = RwLock::new(vec![1]);
        write(&l).push(2);
        assert_eq!(*read(&l), vec![1, 2]);
    }
}
