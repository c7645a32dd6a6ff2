//! Declarations of spandsp 0.0.6's T.38 terminal and core
//! (`t38_terminal.h`, `t38_core.h`): T.30 carried over T.38 IFP packets
//! instead of modem audio. UDPTL framing is not in spandsp (ours:
//! `engine::sip::udptl`).
