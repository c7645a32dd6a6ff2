//! spandsp 0.0.6, the software fax modem behind the engines: [`ffi`] holds
//! the hand-written C declarations, [`modem`] the safe wrapper (a fax
//! terminal, and two of them wired back to back over a simulated line),
//! [`t38`] its twin speaking T.38 IFP packets instead of audio, [`dtmf`]
//! digits dialled after the answer, [`g711`] the µ-law/A-law codec of
//! audio over RTP.

pub mod dtmf;
mod ffi;
pub mod g711;
mod log;
pub mod modem;
pub mod t38;
