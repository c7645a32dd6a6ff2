//! DKIM body hashes computed as the message streams into the queue: the
//! header section (held in memory) names the signatures, each body
//! canonicalization and hash algorithm they use gets a hasher, and the
//! body is fed through them piece by piece — so DKIM and DMARC are
//! verified exactly (RFC 6376 §3.7) without the body in memory. The
//! results stand in for the hashes mail-auth would compute from a whole
//! message ([`mail_auth::AuthenticatedMessage::body_hashes`]).

use mail_auth::common::crypto::{HashAlgorithm, HashContext, HashImpl, Sha1, Sha256};
use mail_auth::dkim::canonicalize::BodyHasher;
use mail_auth::dkim::Canonicalization;
use mail_auth::AuthenticatedMessage;

/// One body hash as mail-auth keeps it: canonicalization, algorithm,
/// length limit (`l=`, 0: all), digest.
pub type BodyHash = (Canonicalization, HashAlgorithm, u64, Vec<u8>);

enum Hasher {
    Sha1(BodyHasher<<Sha1 as HashImpl>::Context>),
    Sha256(BodyHasher<<Sha256 as HashImpl>::Context>),
}

/// The body hashers of one message's signatures.
pub struct BodyHashes {
    hashers: Vec<(Canonicalization, HashAlgorithm, u64, Hasher)>,
}

impl BodyHashes {
    /// Hashers for the signatures in `header` (the header section, its
    /// empty line included). None when it has no signature.
    pub fn for_header(header: &[u8]) -> BodyHashes {
        let hashers = AuthenticatedMessage::parse(header)
            .map(|m| m.body_hashes)
            .unwrap_or_default()
            .into_iter()
            .map(|(c, ha, l, _)| {
                let h = match ha {
                    HashAlgorithm::Sha1 => Hasher::Sha1(BodyHasher::new(Sha1::hasher(), c, l)),
                    HashAlgorithm::Sha256 => {
                        Hasher::Sha256(BodyHasher::new(Sha256::hasher(), c, l))
                    }
                };
                (c, ha, l, h)
            })
            .collect();
        BodyHashes { hashers }
    }

    /// Feed the next piece of the body.
    pub fn write(&mut self, piece: &[u8]) {
        for (_, _, _, h) in &mut self.hashers {
            match h {
                Hasher::Sha1(h) => h.write(piece),
                Hasher::Sha256(h) => h.write(piece),
            }
        }
    }

    /// The digests, once the body has ended.
    pub fn finish(self) -> Vec<BodyHash> {
        self.hashers
            .into_iter()
            .map(|(c, ha, l, h)| {
                let digest = match h {
                    Hasher::Sha1(h) => h.finish().0.complete().as_ref().to_vec(),
                    Hasher::Sha256(h) => h.finish().0.complete().as_ref().to_vec(),
                };
                (c, ha, l, digest)
            })
            .collect()
    }
}

/// Put the streamed digests in place of those mail-auth computed from
/// the header section alone (an empty body).
pub fn apply(message: &mut AuthenticatedMessage<'_>, hashes: &[BodyHash]) {
    for (c, ha, l, digest) in &mut message.body_hashes {
        if let Some((_, _, _, d)) = hashes
            .iter()
            .find(|(c2, ha2, l2, _)| c2 == c && ha2 == ha && l2 == l)
        {
            digest.clone_from(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed digests are those mail-auth computes from the whole
    /// message, for both canonicalizations, however the body is cut.
    #[test]
    fn streamed_hashes_match_whole_message_hashes() {
        let header = b"From: a@example.test\r\n\
            DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=s1; h=from; bh=AAAA; b=AAAA\r\n\
            DKIM-Signature: v=1; a=rsa-sha1; c=simple/simple; d=example.test; s=s2; h=from; bh=AAAA; b=AAAA\r\n\
            \r\n";
        let body = b"Hello  world \t\r\n\r\nline\twith  space  \r\n\r\n\r\n";
        let mut whole = header.to_vec();
        whole.extend_from_slice(body);
        let expected = AuthenticatedMessage::parse(&whole).unwrap().body_hashes;
        assert_eq!(expected.len(), 2);
        for cut in [1, 3, 7, body.len()] {
            let mut h = BodyHashes::for_header(header);
            for piece in body.chunks(cut) {
                h.write(piece);
            }
            let got = h.finish();
            let mut parsed = AuthenticatedMessage::parse(header).unwrap();
            assert_ne!(
                parsed.body_hashes, expected,
                "the header alone hashes an empty body"
            );
            apply(&mut parsed, &got);
            assert_eq!(parsed.body_hashes, expected, "cut {cut}");
        }
    }
}
