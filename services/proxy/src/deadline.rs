//! Deadlines without a timer each. A route's `timeout` and authorize's reply deadline bound
//! nearly every request; a tokio timer per request is an entry put into and taken out of the
//! runtime's timer wheel under its lock, and the wheel is looked through again every time the
//! thread goes to sleep. Here a deadline is a slot in a table of the serving thread's, and one
//! watcher task sleeps until the earliest deadline in it. Deadlines of one length arrive in
//! order, so the watcher wakes about once per length of time, not once per request; a request
//! that ends in time only gives its slot back.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// One serving thread's deadlines (see the module docs).
#[derive(Default)]
pub struct Deadlines {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    table: Mutex<Table>,
    /// Tells the watcher to look again: a deadline earlier than the one it sleeps until came,
    /// or the table is gone.
    poke: Notify,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// The earliest deadline the watcher will wake for; `None` when it waits to be poked.
    armed: Option<Instant>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    closed: bool,
}

enum Slot {
    Free,
    Waiting { deadline: Instant, waker: Waker },
    Expired,
}

impl Shared {
    /// The table. Its slots stay consistent even if a holder panicked (every change is one
    /// assignment), so a poisoned lock is used as it is.
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Deadlines {
    /// `future`, or [`Elapsed`] once `limit` has passed first. A limit too far away to be a
    /// point in time (`Duration::MAX`: no timeout) never passes.
    pub fn bound<F: Future + Unpin>(&self, limit: Duration, future: F) -> Bounded<F> {
        Bounded {
            future,
            deadline: Instant::now().checked_add(limit),
            shared: self.shared.clone(),
            slot: None,
        }
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        self.shared.table().closed = true;
        self.shared.poke.notify_one();
    }
}

/// See [`Deadlines::bound`].
pub struct Bounded<F> {
    future: F,
    deadline: Option<Instant>,
    shared: Arc<Shared>,
    /// This future's slot in the table, once it had to wait.
    slot: Option<usize>,
}

impl<F: Future + Unpin> Future for Bounded<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(out) = Pin::new(&mut this.future).poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let Some(deadline) = this.deadline else { return Poll::Pending };
        let mut table = this.shared.table();
        let Some(at) = this.slot else {
            let waiting = Slot::Waiting { deadline, waker: cx.waker().clone() };
            let at = match table.free.pop() {
                Some(at) => {
                    table.slots[at] = waiting;
                    at
                }
                None => {
                    table.slots.push(waiting);
                    table.slots.len() - 1
                }
            };
            this.slot = Some(at);
            if table.watcher.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
                // The first deadline, or the runtime the last watcher ran on is gone.
                table.watcher = Some(tokio::spawn(watch(this.shared.clone())));
                table.armed = Some(deadline);
            } else if table.armed.is_none_or(|armed| deadline < armed) {
                table.armed = Some(deadline);
                drop(table);
                this.shared.poke.notify_one();
            }
            return Poll::Pending;
        };
        match table.slots.get_mut(at) {
            Some(Slot::Waiting { waker, .. }) => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
            // Expired (or, never, a slot that is not ours): fail closed.
            _ => Poll::Ready(Err(Elapsed)),
        }
    }
}

impl<F> Drop for Bounded<F> {
    fn drop(&mut self) {
        if let Some(at) = self.slot.take() {
            let mut table = self.shared.table();
            if let Some(slot) = table.slots.get_mut(at) {
                *slot = Slot::Free;
                table.free.push(at);
            }
        }
    }
}

/// Wake the futures whose deadline passed, sleep until the earliest left (or until poked),
/// again, until the table is dropped.
async fn watch(shared: Arc<Shared>) {
    let mut expired = Vec::new();
    loop {
        let next = {
            let mut table = shared.table();
            if table.closed {
                return;
            }
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for slot in &mut table.slots {
                let Slot::Waiting { deadline, .. } = slot else { continue };
                if *deadline <= now {
                    if let Slot::Waiting { waker, .. } = std::mem::replace(slot, Slot::Expired) {
                        expired.push(waker);
                    }
                } else {
                    next = Some(next.map_or(*deadline, |n| n.min(*deadline)));
                }
            }
            table.armed = next;
            next
        };
        expired.drain(..).for_each(Waker::wake);
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.poke.notified() => {}
                }
            }
            None => shared.poke.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bound_future_ends_or_times_out_at_its_deadline() {
        let deadlines = Deadlines::default();
        // Done in time: its answer, and the slot is given back.
        let quick = deadlines.bound(
            Duration::from_secs(5),
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                7
            }),
        );
        assert_eq!(quick.await, Ok(7));
        assert_eq!(deadlines.shared.table().free.len(), 1);

        // Too slow: Elapsed at the deadline, not before.
        let start = Instant::now();
        let slow =
            deadlines.bound(Duration::from_secs(2), Box::pin(tokio::time::sleep(Duration::from_secs(60))));
        assert_eq!(slow.await, Err(Elapsed));
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // A later, shorter deadline wakes the watcher earlier than the one it sleeps until.
        let long =
            deadlines.bound(Duration::from_secs(30), Box::pin(tokio::time::sleep(Duration::from_secs(60))));
        let short =
            deadlines.bound(Duration::from_secs(3), Box::pin(tokio::time::sleep(Duration::from_secs(60))));
        let start = Instant::now();
        let (long, short) = tokio::join!(long, async {
            let out = short.await;
            (out, start.elapsed())
        });
        assert_eq!(short, (Err(Elapsed), Duration::from_secs(3)));
        assert_eq!((long, start.elapsed()), (Err(Elapsed), Duration::from_secs(30)));

        // No limit: never elapses.
        let unbounded = deadlines.bound(
            Duration::MAX,
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(86_400)).await;
                "done"
            }),
        );
        assert_eq!(unbounded.await, Ok("done"));
    }

    #[test]
    fn a_new_runtime_gets_a_new_watcher() {
        let deadlines = Deadlines::default();
        for _ in 0..2 {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let out = runtime.block_on(async {
                let never = Box::pin(tokio::time::sleep(Duration::from_secs(60)));
                deadlines.bound(Duration::from_millis(20), never).await
            });
            assert_eq!(out, Err(Elapsed));
        }
    }
}
