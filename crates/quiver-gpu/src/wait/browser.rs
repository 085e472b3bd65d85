//! Waiting for a read-back in the browser: the event loop runs mapping callbacks, so a
//! timeout is a `setTimeout` timer the mapping races.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::context::{Mapping, MappingOutcome};
use crate::{GpuContext, Result};

/// The mapping's outcome once the GPU is done, or `None` when `timeout` passed first.
pub(crate) async fn mapping(
    _ctx: &GpuContext,
    _op: &'static str,
    mapping: Mapping,
    timeout: Option<Duration>,
) -> Result<Option<MappingOutcome>> {
    let Some(timeout) = timeout else { return Ok(Some(mapping.await)) };
    let mut mapping = pin!(mapping);
    let mut timer = pin!(sleep(timeout));
    Ok(std::future::poll_fn(|cx| {
        if let Poll::Ready(outcome) = mapping.as_mut().poll(cx) {
            return Poll::Ready(Some(outcome));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await)
}

/// Resolves after `duration` (never, where the global scope has no `setTimeout`).
async fn sleep(duration: Duration) {
    let promise = Promise::new(&mut |resolve, _reject| {
        let set_timeout = Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        if let Some(set_timeout) = set_timeout {
            let _ = set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from_f64(duration.as_secs_f64() * 1e3));
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
