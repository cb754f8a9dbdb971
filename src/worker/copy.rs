//! A request's shadow copy, assembled while the primary streams past, then handed to the
//! outbox: one shadow per mirror that admitted the request.

use super::state::Worker;
use crate::compare::answers::PrimaryAnswer;
use crate::metrics::MirrorOutcome;
use crate::mirror::{BodyCopy, Shadow, ShadowHeaders, Skip};
use crate::proxy::Proxy;
use std::rc::Rc;

/// A shadow copy being assembled while the primary request streams past.
pub struct MirrorCopy {
    pub route: usize,
    /// Indexes into the route's `mirrors` that admitted this request (never empty).
    pub mirrors: Vec<usize>,
    headers: ShadowHeaders,
    pub body: BodyCopy,
}

impl MirrorCopy {
    /// For the mirrors `admitted` of route `route` (none: no copy), from the request's
    /// headers. The body is kept up to the largest limit of those mirrors; a declared length
    /// over it keeps nothing (the copies are skipped as too large at the end).
    pub fn new<'h>(
        worker: &Worker,
        route: usize,
        admitted: Vec<usize>,
        request_headers: Vec<(&'h [u8], &'h [u8])>,
    ) -> Option<MirrorCopy> {
        let mirrors = &worker.config.routes.get(route)?.mirrors;
        let limit = admitted
            .iter()
            .filter_map(|&i| mirrors.get(i))
            .map(|mirror| mirror.max_body_bytes)
            .max()?;
        let mut body = BodyCopy::new(limit);
        let declared: Option<usize> = request_headers
            .iter()
            .find(|(name, _)| *name == b"content-length")
            .and_then(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse().ok());
        if declared.is_some_and(|length| length > limit) {
            body.overflow();
        }
        Some(MirrorCopy {
            route,
            mirrors: admitted,
            headers: ShadowHeaders::new(request_headers, &worker.config.route_header),
            body,
        })
    }
}

impl Worker {
    /// Hands the finished copy, one shadow per admitted mirror, to the outbox; a compared
    /// mirror opens its comparison (and `primary` starts collecting the primary's answer).
    pub fn finish_copy(
        &self,
        proxy: &impl Proxy,
        copy: MirrorCopy,
        trailers: Vec<(String, String)>,
        primary: &mut Option<PrimaryAnswer>,
    ) {
        let Some(route) = self.config.routes.get(copy.route) else {
            return;
        };
        let (headers, trailers) = (Rc::new(copy.headers), Rc::from(trailers));
        // `None` when the body outgrew the largest limit of the admitted mirrors.
        let body = copy.body.into_shared();
        for &i in &copy.mirrors {
            let Some(mirror) = route.mirrors.get(i) else {
                continue;
            };
            let Some(body) = body.as_ref().filter(|b| b.len() <= mirror.max_body_bytes) else {
                let skip = MirrorOutcome::Skipped(Skip::BodyTooLarge);
                self.count_mirror(proxy, copy.route, i, skip);
                continue;
            };
            let shadow = Shadow {
                route: copy.route,
                mirror: i,
                compared: None,
                authority: headers.authority_for(mirror),
                headers: headers.clone(),
                body: Rc::clone(body),
                trailers: Rc::clone(&trailers),
            };
            match &mirror.compare {
                None => {
                    self.enqueue(proxy, shadow);
                }
                Some(compare) => {
                    self.send_compared(proxy, shadow, (mirror.timeout_ms, compare), primary);
                }
            }
        }
    }
}
