//! Application requests answered by every wire consumer of a group (last message ids, message
//! available, seek, unsubscribe): sending them and gathering the answers.

use super::group::GroupOp;
use super::sub::Sub;
use super::sub::SubOutcome;
use super::sub::SubRequest;
use super::ConsumerRequest;
use super::Consumers;
use super::TopicMessageId;
use crate::error::Error;
use crate::event::Event;
use crate::handle::ConsumerId;
use crate::handle::RequestId;
use crate::outputs::Outputs;
use crate::shared::Shared;
use pulsar_proto::pb;
use std::sync::Arc;
use std::time::Instant;

impl Consumers {
    /// GET_LAST_MESSAGE_ID on every wire consumer: [`Event::LastMessageIds`], or (when
    /// `for_available`) [`Event::HasMessageAvailable`].
    pub(crate) fn last_message_ids(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        for_available: bool,
    ) -> Result<RequestId, Error> {
        let g = self.usable_group(gid)?;
        let request = sh.env.ids.request();
        let subs: Vec<ConsumerId> = g.subs.iter().copied().collect();
        if for_available {
            let local = !g.queue.is_empty()
                || subs.iter().any(|s| {
                    self.subs
                        .get(s)
                        .and_then(Sub::has_message_available_locally)
                        .unwrap_or(false)
                });
            if local || subs.is_empty() {
                sh.out.events.push_back(Event::HasMessageAvailable {
                    consumer: gid,
                    request,
                    result: Ok(local),
                });
                return Ok(request);
            }
        }
        let op = if for_available {
            GroupOp::HasAvailable {
                waiting: subs.len(),
                any: false,
                error: None,
            }
        } else {
            GroupOp::LastIds {
                waiting: subs.len(),
                ids: Vec::new(),
                error: None,
            }
        };
        if let Some(g) = self.groups.get_mut(&gid) {
            g.ops.insert(request, op);
        }
        for sid in subs {
            let Some(s) = self.subs.get_mut(&sid) else {
                continue;
            };
            if !s.send_get_last_id(sh, now, SubRequest::LastId(request)) {
                let o = SubOutcome::LastId(request, Err(Error::ConnectionClosed));
                self.outcomes(sh, now, sid, gid, vec![o]);
            }
        }
        Ok(request)
    }

    pub(crate) fn unsubscribe(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
    ) -> Result<RequestId, Error> {
        let g = self.usable_group(gid)?;
        if g.unsubscribing.is_some() {
            return Err(Error::InvalidState("already unsubscribing"));
        }
        let subs: Vec<ConsumerId> = g.subs.iter().copied().collect();
        let request = sh.env.ids.request();
        if let Some(g) = self.groups.get_mut(&gid) {
            g.unsubscribing = Some(request);
            g.ops.insert(
                request,
                GroupOp::Unsubscribe {
                    waiting: subs.len(),
                    error: None,
                },
            );
        }
        if subs.is_empty() {
            self.finish_op(sh, now, gid, request);
        }
        for sid in subs {
            let Some(s) = self.subs.get_mut(&sid) else {
                continue;
            };
            let mut outcomes = s.flush_acks(sh, now);
            let sent = s.send_tracked(
                sh,
                now,
                |request_id| {
                    pb::BaseCommand::from(pb::CommandUnsubscribe {
                        consumer_id: sid.get(),
                        request_id,
                        force: None,
                    })
                },
                ConsumerRequest::Unsubscribe,
                SubRequest::Unsubscribe(request),
            );
            if !sent {
                outcomes.push(SubOutcome::Unsubscribe(
                    request,
                    Err(Error::ConnectionClosed),
                ));
            }
            self.outcomes(sh, now, sid, gid, outcomes);
        }
        Ok(request)
    }

    /// Routes the ends of wire-consumer requests to their application requests.
    pub(super) fn outcomes(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        sid: ConsumerId,
        gid: ConsumerId,
        outcomes: Vec<SubOutcome>,
    ) {
        for o in outcomes {
            match o {
                SubOutcome::Acks(rs, result) => acks_completed(&mut sh.out, gid, rs, &result),
                SubOutcome::LastId(request, result) => {
                    let available = match (&result, self.subs.get(&sid)) {
                        (Ok(answer), Some(s)) => Some(s.has_message_available_with(answer)),
                        _ => None,
                    };
                    let topic = self.subs.get(&sid).map(|s| s.topic_name.clone());
                    let Some(op) = self.group_op(gid, request) else {
                        continue;
                    };
                    if matches!(op, GroupOp::LastIds { .. } | GroupOp::HasAvailable { .. }) {
                        if let Some(answer) = op.answered(result) {
                            match op {
                                GroupOp::LastIds { ids, .. } => ids.push(TopicMessageId {
                                    topic: topic.unwrap_or_else(|| Arc::from("")),
                                    id: answer.last,
                                }),
                                GroupOp::HasAvailable { any, .. } => {
                                    *any |= available.unwrap_or(false);
                                }
                                _ => {}
                            }
                        }
                    }
                    self.finish_op(sh, now, gid, request);
                }
                SubOutcome::HeadLastId(Ok(answer)) => self.seek_head(sh, now, sid, answer.last),
                SubOutcome::HeadSeek(Ok(())) => {
                    self.seek_done(sh, now, sid);
                    if let Some(s) = self.subs.get_mut(&sid) {
                        s.head_pending = false;
                    }
                    self.resume_link(sh, now, sid);
                    self.check_ready(&mut sh.out, gid);
                }
                SubOutcome::HeadLastId(Err(e)) | SubOutcome::HeadSeek(Err(e)) => {
                    self.head_failed(sh, now, sid, e)
                }
                SubOutcome::Seek(request, result) => {
                    if result.is_ok() {
                        self.seek_done(sh, now, sid);
                    } else if let Some(s) = self.subs.get_mut(&sid) {
                        s.seek = None;
                    }
                    self.resume_link(sh, now, sid);
                    if let Some(op @ GroupOp::Seek { .. }) = self.group_op(gid, request) {
                        op.answered(result);
                    }
                    self.finish_op(sh, now, gid, request);
                }
                SubOutcome::Unsubscribe(request, result) => {
                    if result.is_ok() {
                        self.finish_sub(sh, now, sid);
                    }
                    if let Some(op @ GroupOp::Unsubscribe { .. }) = self.group_op(gid, request) {
                        op.answered(result);
                    }
                    self.finish_op(sh, now, gid, request);
                }
            }
        }
    }

    pub(super) fn group_outcome_without_sub(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        o: SubOutcome,
    ) {
        match o {
            SubOutcome::Acks(rs, result) => acks_completed(&mut sh.out, gid, rs, &result),
            SubOutcome::LastId(r, res) => {
                if let Some(op @ (GroupOp::LastIds { .. } | GroupOp::HasAvailable { .. })) =
                    self.group_op(gid, r)
                {
                    op.answered(res);
                }
                self.finish_op(sh, now, gid, r);
            }
            SubOutcome::Seek(r, res) | SubOutcome::Unsubscribe(r, res) => {
                if let Some(op @ (GroupOp::Seek { .. } | GroupOp::Unsubscribe { .. })) =
                    self.group_op(gid, r)
                {
                    // a wire consumer closed meanwhile does not fail the request
                    op.answered(res.or_else(|e| match e {
                        Error::Closed => Ok(()),
                        e => Err(e),
                    }));
                }
                self.finish_op(sh, now, gid, r);
            }
            // the reader's own positioning: nothing waits for it once the wire consumer is gone
            SubOutcome::HeadLastId(_) | SubOutcome::HeadSeek(_) => {}
        }
    }

    /// The application request `request` of group `gid`, while it waits for wire consumers.
    fn group_op(&mut self, gid: ConsumerId, request: RequestId) -> Option<&mut GroupOp> {
        self.groups.get_mut(&gid)?.ops.get_mut(&request)
    }

    /// Completes an application request once every wire consumer answered.
    pub(super) fn finish_op(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        request: RequestId,
    ) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        if g.ops.get(&request).is_none_or(|op| op.waiting() != 0) {
            return;
        }
        let Some(op) = g.ops.remove(&request) else {
            return;
        };
        match op {
            GroupOp::LastIds { ids, error, .. } => sh.out.events.push_back(Event::LastMessageIds {
                consumer: gid,
                request,
                result: error.map_or(Ok(ids), Err),
            }),
            GroupOp::HasAvailable { any, error, .. } => {
                sh.out.events.push_back(Event::HasMessageAvailable {
                    consumer: gid,
                    request,
                    result: if any {
                        Ok(true)
                    } else {
                        error.map_or(Ok(false), Err)
                    },
                })
            }
            GroupOp::Seek { error, .. } => sh.out.events.push_back(Event::SeekCompleted {
                consumer: gid,
                request,
                result: error.map_or(Ok(()), Err),
            }),
            GroupOp::Unsubscribe { error, .. } => {
                g.unsubscribing = None;
                match error {
                    None => {
                        sh.out.events.push_back(Event::Unsubscribed {
                            consumer: gid,
                            request,
                            result: Ok(()),
                        });
                        self.end_group(sh, Some(now), gid, None, false);
                    }
                    Some(e) => sh.out.events.push_back(Event::Unsubscribed {
                        consumer: gid,
                        request,
                        result: Err(e),
                    }),
                }
            }
        }
    }
}

/// Tells the application how its acknowledgement requests `requests` on consumer `gid` ended.
fn acks_completed(
    out: &mut Outputs,
    gid: ConsumerId,
    requests: Vec<RequestId>,
    result: &Result<(), Error>,
) {
    for request in requests {
        out.events.push_back(Event::AckCompleted {
            consumer: gid,
            request,
            result: result.clone(),
        });
    }
}
