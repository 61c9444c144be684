//! `verify`'s timeline events as the check that no message vanished (`visible`) reads them.
//!
//! Why a module of its own: `verify` runs that check, and the check is kept free of `verify`
//! (it states what it reads as [`ShownEvent`]); this glue is the one place that knows both.

use crate::verify::SeenEvent;
use crate::visible::ShownEvent;

impl ShownEvent for SeenEvent {
    fn event_type(&self) -> &str {
        &self.event_type
    }

    fn rel_type(&self) -> Option<&str> {
        self.rel_type.as_deref()
    }

    fn body(&self) -> Option<&str> {
        self.raw["content"]["body"].as_str()
    }

    fn guid(&self) -> Option<&str> {
        self.guid.as_deref()
    }
}
