//! Pure policy: no I/O, no clocks of their own, no actors. The actors and bus adapters call these, and
//! each is unit-tested on its own.

pub mod backoff;
pub mod circuit;
pub mod intensity;
pub mod outcome;
pub mod rate;
pub mod retry;
