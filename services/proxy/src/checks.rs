//! Asking authorize: every request that the decision cache cannot answer is checked by
//! authorize, over NATS. While a check message is in flight, checks that arrive wait for the
//! next message and travel together (`authorize.check_batch`), each still decided on its
//! own. At low load a check leaves at once, alone; under load the NATS cost (messages,
//! syscalls, the server's routing, a few thread wake-ups in every process on the way) is
//! shared by the checks in a message instead of paid by each.
//!
//! Under load the requests of a thread would otherwise split into two groups taking turns:
//! those answered by one message, whose next requests arrive while the other group's message
//! is in flight. So after a message of n checks is answered, the next one waits until n checks
//! have queued (its own group is back), at most [`MAX_GATHER`]; a check that brings the queue
//! to n sends it at once. The groups merge, and a message carries about every connection of
//! the thread (`just bench`: half the messages, a quarter less CPU per request).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use portcullis_runtime::bus::{Bus, BusError};
use portcullis_schemas::messages::{CheckBatchReply, CheckBatchRequest, CheckReply, CheckRequest, Reply};

use crate::decisions::{Decision, parse_header};
use tokio::sync::{Notify, oneshot};

/// Messages one serving thread keeps in flight before checks start to queue.
const MAX_IN_FLIGHT: usize = 1;
/// Most checks in one message (replies carry identity JWTs and sealed tokens: this keeps a
/// message well under NATS's default 1 MB payload limit).
const MAX_BATCH: usize = 64;
/// Longest the next message waits for as many checks as the last one carried.
const MAX_GATHER: Duration = Duration::from_millis(1);
/// Most checks waiting for a message; beyond it a check fails at once (503) rather than join
/// a backlog it could only time out in.
const MAX_QUEUE: usize = 4096;

type Waiter = oneshot::Sender<Result<Decision, BusError>>;

/// One per serving thread.
pub struct Checks {
    bus: Bus,
    batch_subject: String,
    single_subject: String,
    state: Mutex<State>,
    /// Told when the queue reaches `State::gather`.
    gathered: Notify,
    /// Each check's reply deadline.
    deadlines: crate::deadline::Deadlines,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    /// While a sender gathers: the queue length it waits for (0: none waits).
    gather: usize,
    queue: Vec<(CheckRequest, Waiter)>,
}

impl Checks {
    pub fn new(bus: Bus) -> Arc<Checks> {
        let batch_subject = bus.contract().authorize_check_batch();
        let single_subject = bus.contract().authorize_check();
        Arc::new(Checks {
            bus,
            batch_subject,
            single_subject,
            state: Mutex::new(State::default()),
            gathered: Notify::new(),
            deadlines: crate::deadline::Deadlines::default(),
        })
    }

    /// The queue. A counter and a list stay consistent even if a holder panicked, so a
    /// poisoned lock is used as it is rather than stopping every check for good.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Authorize's decision on `check`. Fails closed: no answer within the request deadline
    /// (however long the check waited for a message) is an error.
    pub async fn check(self: &Arc<Self>, check: CheckRequest) -> Result<Decision, BusError> {
        let deadline = self.bus.request_timeout();
        let (tx, rx) = oneshot::channel();
        let batch = {
            let mut state = self.state();
            if state.queue.len() >= MAX_QUEUE {
                return Err(BusError::Timeout(deadline));
            }
            state.queue.push((check, tx));
            if state.gather > 0 && state.queue.len() >= state.gather {
                state.gather = 0;
                // Stored if the sender is not waiting yet: it goes at once when it does.
                self.gathered.notify_one();
            }
            if state.in_flight < MAX_IN_FLIGHT {
                state.in_flight += 1;
                Some(take(&mut state.queue))
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            // Sent by its own task: if this request goes away, the others in the message
            // still get their answers. The slot is given back even if the task never runs.
            let slot = Slot { checks: self.clone(), held: true };
            tokio::spawn(self.clone().send(batch, slot));
        }
        match self.deadlines.bound(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(BusError::Nats("check dropped".into())),
            Err(_) => Err(BusError::Timeout(deadline)),
        }
    }

    /// Send `batch`, hand out the answers, and go on with whatever queued meanwhile.
    async fn send(self: Arc<Self>, mut batch: Vec<(CheckRequest, Waiter)>, mut slot: Slot) {
        loop {
            if !batch.is_empty() {
                let sent = batch.len();
                self.send_batch(batch).await;
                // Let the requests that arrived with the reply (ready in this same turn of
                // the thread's event loop) reach their checks first: they join the next
                // message instead of making another one. Each NATS message costs the server
                // and both clients a few thread wake-ups, whatever it carries.
                tokio::task::yield_now().await;
                self.gather(sent).await;
            }
            let mut state = self.state();
            if state.queue.is_empty() {
                state.in_flight = state.in_flight.saturating_sub(1);
                slot.held = false;
                return;
            }
            batch = take(&mut state.queue);
        }
    }

    /// Wait until `count` checks have queued, or [`MAX_GATHER`] (see the module docs).
    async fn gather(&self, count: usize) {
        {
            let mut state = self.state();
            if state.queue.len() >= count {
                return;
            }
            state.gather = count;
        }
        let _ = tokio::time::timeout(MAX_GATHER, self.gathered.notified()).await;
        // A notification that raced with the timeout stays stored and only makes the next
        // gathering end early: one smaller message.
        self.state().gather = 0;
    }

    /// One `check_batch` message; every waiter gets its answer or the error. An authorize
    /// that does not serve `check_batch` yet (a rolling upgrade) gets the checks one by one.
    async fn send_batch(&self, batch: Vec<(CheckRequest, Waiter)>) {
        let (checks, waiters): (Vec<CheckRequest>, Vec<Waiter>) = batch.into_iter().unzip();
        // Replies may grant a long header value once for several checks (one person's
        // identity JWT, for the requests of one page): it is then read and checked once.
        let request = CheckBatchRequest { checks, share_headers: true };
        let count = request.checks.len();
        let reply: Result<CheckBatchReply, BusError> =
            self.bus.request(self.batch_subject.clone(), &request).await;
        match reply {
            Ok(r) if r.results.len() == count => {
                let shared: Vec<_> = r.shared_headers.into_iter().map(parse_header).collect();
                for (waiter, result) in waiters.into_iter().zip(r.results) {
                    let _ = waiter.send(match result {
                        Reply::Ok(answer) => Decision::with_shared(answer, &shared).map_err(BusError::Decode),
                        Reply::Error(e) => Err(BusError::Remote(e)),
                    });
                }
            }
            Ok(r) => {
                let error = BusError::Decode(format!("{} results for {count} checks", r.results.len()));
                waiters.into_iter().for_each(|w| drop(w.send(Err(error.clone()))));
            }
            Err(BusError::NoResponders(_)) => {
                let answers = request.checks.into_iter().zip(waiters).map(|(check, waiter)| async move {
                    let answer: Result<CheckReply, BusError> =
                        self.bus.request(self.single_subject.clone(), &check).await;
                    let _ = waiter
                        .send(answer.and_then(|a| Decision::with_shared(a, &[]).map_err(BusError::Decode)));
                });
                futures::future::join_all(answers).await;
            }
            Err(error) => waiters.into_iter().for_each(|w| drop(w.send(Err(error.clone())))),
        }
    }
}

/// A message slot held by a sending task. Given back by the task when its queue is empty;
/// if the task ends any other way (a panic, the runtime stopping before it ran), given back
/// here, so the next check starts a new message instead of waiting behind one that will
/// never return.
struct Slot {
    checks: Arc<Checks>,
    held: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.held {
            let mut state = self.checks.state();
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

/// Up to [`MAX_BATCH`] checks from the front of the queue, oldest first, leaving out those
/// whose request already gave up (timed out or went away).
fn take(queue: &mut Vec<(CheckRequest, Waiter)>) -> Vec<(CheckRequest, Waiter)> {
    queue.retain(|(_, waiter)| !waiter.is_closed());
    if queue.len() <= MAX_BATCH {
        return std::mem::take(queue);
    }
    queue.drain(..MAX_BATCH).collect()
}
