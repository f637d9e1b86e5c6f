//! Asking authorize: every request that the decision cache cannot answer is checked by
//! authorize, over NATS. While a few check messages are in flight, checks that arrive wait
//! for the next message and travel together (`authorize.check_batch`), each still decided on
//! its own. At low load a check leaves at once, alone; under load the NATS cost (messages,
//! syscalls, the server's routing) is shared by the checks in a message instead of paid by each.

use std::sync::{Arc, Mutex};

use portcullis_runtime::bus::{Bus, BusError};
use portcullis_schemas::messages::{CheckBatchReply, CheckBatchRequest, CheckReply, CheckRequest, Reply};
use tokio::sync::oneshot;

/// Messages one serving thread keeps in flight before checks start to queue.
const MAX_IN_FLIGHT: usize = 1;
/// Most checks in one message.
const MAX_BATCH: usize = 128;

type Waiter = oneshot::Sender<Result<CheckReply, BusError>>;

/// One per serving thread.
pub struct Checks {
    bus: Bus,
    subject: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    queue: Vec<(CheckRequest, Waiter)>,
}

impl Checks {
    pub fn new(bus: Bus) -> Arc<Checks> {
        let subject = bus.contract().authorize_check_batch();
        Arc::new(Checks { bus, subject, state: Mutex::new(State::default()) })
    }

    /// The queue. A counter and a list stay consistent even if a holder panicked, so a
    /// poisoned lock is used as it is rather than stopping every check for good.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Authorize's decision on `check`. Fails closed: no answer within the request deadline
    /// (however long the check waited for a message) is an error.
    pub async fn check(self: &Arc<Self>, check: CheckRequest) -> Result<CheckReply, BusError> {
        let (tx, rx) = oneshot::channel();
        let batch = {
            let mut state = self.state();
            state.queue.push((check, tx));
            if state.in_flight < MAX_IN_FLIGHT {
                state.in_flight += 1;
                Some(take(&mut state.queue))
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            // Sent by its own task: if this request goes away, the others in the message
            // still get their answers.
            tokio::spawn(self.clone().send(batch));
        }
        let deadline = self.bus.request_timeout();
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(BusError::Nats("check dropped".into())),
            Err(_) => Err(BusError::Timeout(deadline)),
        }
    }

    /// Send `batch`, hand out the answers, and go on with whatever queued meanwhile.
    async fn send(self: Arc<Self>, mut batch: Vec<(CheckRequest, Waiter)>) {
        let mut slot = Slot { checks: self.clone(), held: true };
        loop {
            let (checks, waiters): (Vec<CheckRequest>, Vec<Waiter>) = batch.into_iter().unzip();
            let count = checks.len();
            let reply: Result<CheckBatchReply, BusError> =
                self.bus.request(self.subject.clone(), &CheckBatchRequest { checks }).await;
            match reply {
                Ok(r) if r.results.len() == count => {
                    for (waiter, result) in waiters.into_iter().zip(r.results) {
                        let _ = waiter.send(match result {
                            Reply::Ok(answer) => Ok(answer),
                            Reply::Error(e) => Err(BusError::Remote(e)),
                        });
                    }
                }
                Ok(r) => {
                    let error = BusError::Decode(format!("{} results for {count} checks", r.results.len()));
                    waiters.into_iter().for_each(|w| drop(w.send(Err(error.clone()))));
                }
                Err(error) => waiters.into_iter().for_each(|w| drop(w.send(Err(error.clone())))),
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
}

/// A message slot held by a sending task. Given back by the task when its queue is empty;
/// if the task ends any other way (a panic, the runtime stopping), given back here, so the
/// next check starts a new message instead of waiting behind one that will never return.
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

/// Up to [`MAX_BATCH`] checks from the front of the queue, oldest first.
fn take(queue: &mut Vec<(CheckRequest, Waiter)>) -> Vec<(CheckRequest, Waiter)> {
    if queue.len() <= MAX_BATCH {
        return std::mem::take(queue);
    }
    queue.drain(..MAX_BATCH).collect()
}
