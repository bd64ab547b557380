//! The simulated network seen from the client: reading routers back from the kernel
//! ([`view`]), the firewall dumps taken apart ([`firewall`]), and the comparison of what the
//! kernel holds with a topology ([`verify`]). Used by `tsimctl net status` and `net verify`.

pub mod firewall;
pub mod status;
pub mod verify;
pub mod view;

pub use status::RouterStatus;
pub use verify::{Finding, Kind, Problem, RouterReport, compare, with_host_gateways};
pub use view::{RouterView, read_router, read_routers};
