//! SRTP protection of one RTP packet with an AEAD suite (RFC 7714): the payload is encrypted
//! with AES-GCM under the session key, the RTP header is the associated data, and the 16-byte
//! tag follows the payload. This is the cryptographic work every forwarded packet costs an
//! SFU, done with aws-lc-rs, the crypto under the agent's str0m.
//!
//! The session key and salt are taken as given: deriving them from the DTLS master secret
//! happens once per session and is no part of the per-packet floor.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// The RTP header the floor writes: 12 bytes, no CSRCs or extensions.
pub const RTP_HEADER_LEN: usize = 12;
/// The AEAD tag SRTP appends.
pub const TAG_LEN: usize = 16;
/// The salt of both AEAD suites (RFC 7714 §12).
pub const SALT_LEN: usize = 12;

/// The SRTP protection profiles the agent's str0m and the load generator's webrtc-rs share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// SRTP_AEAD_AES_128_GCM.
    Aes128Gcm,
    /// SRTP_AEAD_AES_256_GCM.
    Aes256Gcm,
}

impl Profile {
    /// The name `--srtp` takes.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Aes128Gcm => "aes128-gcm",
            Profile::Aes256Gcm => "aes256-gcm",
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Profile::Aes128Gcm => 16,
            Profile::Aes256Gcm => 32,
        }
    }
}

/// Protects RTP packets of one direction of one session.
pub struct Sealer {
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
}

/// Why a packet could not be protected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the session key has {got} bytes; the profile needs {want}")]
    KeyLength { got: usize, want: usize },
    #[error("an RTP packet of {0} bytes is shorter than its 12-byte header")]
    Short(usize),
    #[error("AES-GCM refused the packet")]
    Cipher,
}

impl Sealer {
    pub fn new(profile: Profile, key: &[u8], salt: [u8; SALT_LEN]) -> Result<Self, SealError> {
        if key.len() != profile.key_len() {
            return Err(SealError::KeyLength {
                got: key.len(),
                want: profile.key_len(),
            });
        }
        let algorithm = match profile {
            Profile::Aes128Gcm => &AES_128_GCM,
            Profile::Aes256Gcm => &AES_256_GCM,
        };
        let key = UnboundKey::new(algorithm, key).map_err(|_| SealError::Cipher)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            salt,
        })
    }

    /// The 12-byte IV of RFC 7714 §8.1: `00 00 || SSRC || ROC || SEQ`, XOR the salt.
    pub fn iv(&self, ssrc: u32, roc: u32, seq: u16) -> [u8; SALT_LEN] {
        let mut iv = [0u8; SALT_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..10].copy_from_slice(&roc.to_be_bytes());
        iv[10..12].copy_from_slice(&seq.to_be_bytes());
        for (byte, salt) in iv.iter_mut().zip(self.salt) {
            *byte ^= salt;
        }
        iv
    }

    /// The nonce of the RTP packet starting `packet` (at least its 12-byte header).
    fn nonce(&self, packet: &[u8], roc: u32) -> Nonce {
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        Nonce::assume_unique_for_key(self.iv(ssrc, roc, seq))
    }

    /// Protects the RTP packet in `packet` (header, then payload) in place and appends the
    /// tag. `roc` is the rollover counter of the packet's sequence number.
    pub fn protect(&self, packet: &mut Vec<u8>, roc: u32) -> Result<(), SealError> {
        if packet.len() < RTP_HEADER_LEN {
            return Err(SealError::Short(packet.len()));
        }
        let nonce = self.nonce(packet, roc);
        let (header, payload) = packet.split_at_mut(RTP_HEADER_LEN);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&*header), payload)
            .map_err(|_| SealError::Cipher)?;
        packet.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// The inverse of [`Sealer::protect`]: checks the tag and decrypts in place, leaving the
    /// RTP packet. For tests.
    #[cfg(test)]
    fn unprotect(&self, packet: &mut Vec<u8>, roc: u32) -> Result<(), SealError> {
        if packet.len() < RTP_HEADER_LEN + TAG_LEN {
            return Err(SealError::Short(packet.len()));
        }
        let nonce = self.nonce(packet, roc);
        let (header, sealed) = packet.split_at_mut(RTP_HEADER_LEN);
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(&*header), sealed)
            .map_err(|_| SealError::Cipher)?
            .len();
        packet.truncate(RTP_HEADER_LEN + plain_len);
        Ok(())
    }
}

/// Writes an RTP header (version 2, no padding, extensions or CSRCs) into `packet`.
pub fn write_header(packet: &mut Vec<u8>, payload_type: u8, seq: u16, timestamp: u32, ssrc: u32) {
    packet.clear();
    packet.push(0x80);
    packet.push(payload_type & 0x7f);
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut packet = Vec::new();
        write_header(&mut packet, 96, seq, 90_000, ssrc);
        packet.extend_from_slice(payload);
        packet
    }

    #[test]
    fn the_iv_is_ssrc_roc_and_seq_under_the_salt() {
        let salt = [
            0x51, 0x75, 0x69, 0x64, 0x20, 0x70, 0x72, 0x6f, 0x20, 0x71, 0x75, 0x6f,
        ];
        let sealer = Sealer::new(Profile::Aes128Gcm, &[7; 16], salt).unwrap();
        let iv = sealer.iv(0xcafe_babe, 0x0000_0001, 0x1234);
        let plain: [u8; 12] = [0, 0, 0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1, 0x12, 0x34];
        let expected: Vec<u8> = plain.iter().zip(salt).map(|(a, b)| a ^ b).collect();
        assert_eq!(iv.to_vec(), expected);
    }

    #[test]
    fn a_protected_packet_keeps_its_header_hides_its_payload_and_opens_again() {
        for profile in [Profile::Aes128Gcm, Profile::Aes256Gcm] {
            let sealer = Sealer::new(profile, &vec![3; profile.key_len()], [9; SALT_LEN]).unwrap();
            let payload = vec![0xab; 1_000];
            let plain = packet(4_242, 0x1111_2222, &payload);
            let mut sealed = plain.clone();
            sealer.protect(&mut sealed, 0).unwrap();
            assert_eq!(sealed.len(), plain.len() + TAG_LEN);
            assert_eq!(sealed[..RTP_HEADER_LEN], plain[..RTP_HEADER_LEN]);
            assert_ne!(sealed[RTP_HEADER_LEN..plain.len()], payload[..]);
            let mut opened = sealed.clone();
            sealer.unprotect(&mut opened, 0).unwrap();
            assert_eq!(opened, plain);
            // The header is authenticated: a changed sequence number fails the tag, and so
            // does another rollover counter.
            let mut tampered = sealed.clone();
            tampered[3] ^= 1;
            assert_eq!(sealer.unprotect(&mut tampered, 0), Err(SealError::Cipher));
            assert_eq!(
                sealer.unprotect(&mut sealed.clone(), 1),
                Err(SealError::Cipher)
            );
        }
    }

    #[test]
    fn bad_keys_and_short_packets_are_refused() {
        assert_eq!(
            Sealer::new(Profile::Aes256Gcm, &[0; 16], [0; SALT_LEN]).err(),
            Some(SealError::KeyLength { got: 16, want: 32 })
        );
        let sealer = Sealer::new(Profile::Aes128Gcm, &[0; 16], [0; SALT_LEN]).unwrap();
        assert_eq!(
            sealer.protect(&mut vec![0x80; 5], 0),
            Err(SealError::Short(5))
        );
    }
}
