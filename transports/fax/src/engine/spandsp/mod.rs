//! spandsp 0.0.6, the software fax modem behind the engines: [`ffi`] holds
//! the hand-written C declarations, [`modem`] the safe wrapper (a fax
//! terminal, and two of them wired back to back over a simulated line),
//! [`dtmf`] digits dialled after the answer.

pub mod dtmf;
mod ffi;
mod log;
pub mod modem;
