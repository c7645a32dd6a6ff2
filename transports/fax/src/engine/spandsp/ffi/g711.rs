//! Declarations of spandsp 0.0.6's G.711 codec (`g711.h`) and the audio
//! terminal's fill-in for lost audio (`fax_rx_fillin`, `fax.h`): fax as
//! µ-law/A-law audio over RTP.
