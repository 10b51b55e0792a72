//! `ionctl bench floor`: the cost floor of forwarding. For the same traffic as a load test
//! (receivers, packets per second, payload size) it does only what no SFU can avoid per
//! forwarded packet: write the RTP header, SRTP-protect the packet ([`seal`]) and hand it to
//! the kernel in batches with `sendmmsg`, one UDP socket sending to every receiver on
//! loopback. The sending thread's own CPU time over the packets it sent is the floor; run in
//! the same run as the agent's load test (`scripts/bench-floor`), the ratio agent / floor
//! holds across machines where absolute figures do not.
//!
//! On loopback the kernel delivers each datagram inside the sender's `sendmmsg`, and wakes
//! there whatever waits on the receiving socket. So how the receivers read ([`ReceiveMode`])
//! is part of the sender's cost: the load generator's peers wait in epoll.

pub mod seal;

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, sendmmsg};
use nix::time::{ClockId, clock_gettime};
use serde::Serialize;

use seal::{Profile, RTP_HEADER_LEN, SALT_LEN, Sealer, TAG_LEN, write_header};

/// What to send, and how.
#[derive(Debug, Clone)]
pub struct FloorOptions {
    pub receivers: u32,
    /// Packets per second to all receivers together.
    pub packets_per_second: f64,
    /// RTP payload bytes per packet.
    pub payload_bytes: usize,
    pub duration: Duration,
    /// Packets per `sendmmsg` call at most.
    pub batch: usize,
    pub profile: Profile,
    /// The CPU the sending thread is pinned to, if any.
    pub sender_cpu: Option<usize>,
    /// The CPU the receiving thread is pinned to, if any.
    pub receiver_cpu: Option<usize>,
    pub receive: ReceiveMode,
}

/// How the receivers read their sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReceiveMode {
    /// One thread reads every socket in turn and sleeps 1 ms when all are empty. Nothing
    /// waits on a socket, so a send wakes nothing: the cheapest delivery there is.
    Poll,
    /// Each socket is read by its own task of a Tokio runtime that waits in epoll, as the
    /// load generator's webrtc-rs peers read theirs. Every datagram then runs the socket's
    /// epoll callback, and wakes the runtime when it sleeps, inside the sender's send call,
    /// as each datagram the agent sends to the load generator does. This thread sleeps more
    /// often than the load generator's runtime, so it pays somewhat more wake-ups per
    /// datagram than the agent does (docs/benchmarks.md).
    Wait,
}

impl ReceiveMode {
    pub fn name(self) -> &'static str {
        match self {
            ReceiveMode::Poll => "poll",
            ReceiveMode::Wait => "wait",
        }
    }
}

/// What one run sent and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    pub profile: Profile,
    pub receive: ReceiveMode,
    pub receivers: u32,
    pub batch: usize,
    pub payload_bytes: usize,
    pub target_packets_per_second: f64,
    pub seconds: f64,
    pub packets_sent: u64,
    /// Packets the receivers read back: a check that the floor really delivered.
    pub packets_received: u64,
    pub sendmmsg_calls: u64,
    /// CPU time of the sending thread alone.
    pub sender_cpu_seconds: f64,
    pub cpu_us_per_packet: f64,
    pub packets_per_core_second: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("{0}")]
    Options(String),
    #[error("loopback UDP failed: {0}")]
    Socket(#[from] std::io::Error),
    #[error("sendmmsg failed: {0}")]
    Send(nix::Error),
    #[error("could not pin the {which} thread to CPU {cpu}: {error}")]
    Pin {
        which: &'static str,
        cpu: usize,
        error: nix::Error,
    },
    #[error("SRTP: {0}")]
    Seal(#[from] seal::SealError),
    /// A fault of the bench itself, not of its options: a runtime error (exit 1).
    #[error("{0} panicked; this is a bug in the floor bench, please report it with the command")]
    Panicked(&'static str),
}

/// One receiver's stream: its address, SSRC, next sequence number and rollover counter.
struct Stream {
    address: SockaddrIn,
    ssrc: u32,
    seq: u16,
    roc: u32,
}

/// Sends the traffic of `options` and reports its cost.
pub fn run(options: &FloorOptions) -> Result<FloorReport, FloorError> {
    check(options)?;
    let receivers: Vec<UdpSocket> = (0..options.receivers)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect::<Result<_, std::io::Error>>()?;
    let mut streams = Vec::with_capacity(receivers.len());
    for (k, socket) in receivers.iter().enumerate() {
        let SocketAddr::V4(address) = socket.local_addr()? else {
            return Err(FloorError::Options("a receiver bound to IPv6".to_owned()));
        };
        streams.push(Stream {
            address: SockaddrIn::from(address),
            ssrc: 0x5000_0000 + k as u32,
            seq: (k as u16).wrapping_mul(7_919),
            roc: 0,
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let receiver_cpu = options.receiver_cpu;
    let mode = options.receive;
    let receiving = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || match mode {
            ReceiveMode::Poll => receive_polling(&receivers, &stop, receiver_cpu),
            ReceiveMode::Wait => receive_waiting(receivers, &stop, receiver_cpu),
        })
    };
    let sent = send(options, &mut streams);
    // Whatever is in flight lands within a few milliseconds on loopback.
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let received = receiving
        .join()
        .map_err(|_| FloorError::Panicked("the receiving thread"))??;
    let sent = sent?;
    let packets = sent.packets.max(1) as f64;
    Ok(FloorReport {
        profile: options.profile,
        receive: options.receive,
        receivers: options.receivers,
        batch: options.batch,
        payload_bytes: options.payload_bytes,
        target_packets_per_second: options.packets_per_second,
        seconds: sent.seconds,
        packets_sent: sent.packets,
        packets_received: received,
        sendmmsg_calls: sent.calls,
        sender_cpu_seconds: sent.cpu_seconds,
        cpu_us_per_packet: sent.cpu_seconds * 1e6 / packets,
        packets_per_core_second: if sent.cpu_seconds > 0.0 {
            sent.packets as f64 / sent.cpu_seconds
        } else {
            0.0
        },
    })
}

fn check(options: &FloorOptions) -> Result<(), FloorError> {
    let bad = |text: String| Err(FloorError::Options(text));
    if options.receivers == 0 || options.receivers > 10_000 {
        return bad(format!(
            "--receivers {} is out of range: use 1 to 10000",
            options.receivers
        ));
    }
    if !(options.packets_per_second.is_finite() && options.packets_per_second > 0.0) {
        return bad(format!(
            "--packets-per-second {} must be a positive number",
            options.packets_per_second
        ));
    }
    if options.payload_bytes == 0 || options.payload_bytes > 1_400 {
        return bad(format!(
            "--payload-bytes {} is out of range: use 1 to 1400 (one RTP packet under the MTU)",
            options.payload_bytes
        ));
    }
    if options.batch == 0 || options.batch > 1_024 {
        return bad(format!(
            "--batch {} is out of range: use 1 to 1024",
            options.batch
        ));
    }
    if options.duration.is_zero() {
        return bad("--duration 0 measures nothing: use e.g. 10s".to_owned());
    }
    Ok(())
}

struct Sent {
    packets: u64,
    calls: u64,
    seconds: f64,
    cpu_seconds: f64,
}

fn pin(which: &'static str, cpu: Option<usize>) -> Result<(), FloorError> {
    let Some(cpu) = cpu else {
        return Ok(());
    };
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set))
        .map_err(|error| FloorError::Pin { which, cpu, error })
}

fn thread_cpu_seconds() -> f64 {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// Paces packets round-robin over the streams, in batches, until the duration has passed.
fn send(options: &FloorOptions, streams: &mut [Stream]) -> Result<Sent, FloorError> {
    pin("sending", options.sender_cpu)?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    // As the agent's media sockets do: without it the kernel's IP ID draw is part of the
    // floor that the agent does not pay.
    crate::udp::send_atomic_datagrams(&socket)?;
    let mut key = vec![0u8; options.profile.key_len()];
    let mut salt = [0u8; SALT_LEN];
    fastrand::fill(&mut key);
    fastrand::fill(&mut salt);
    let sealer = Sealer::new(options.profile, &key, salt)?;
    let payload: Vec<u8> = (0..options.payload_bytes).map(|i| i as u8).collect();
    let mut buffers: Vec<Vec<u8>> = (0..options.batch)
        .map(|_| Vec::with_capacity(RTP_HEADER_LEN + options.payload_bytes + TAG_LEN))
        .collect();
    let mut addresses: Vec<Option<SockaddrIn>> = Vec::with_capacity(options.batch);
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(options.batch, None);
    // Ticks of 2 ms: as often as a forwarder's socket loop flushes under load.
    let tick = Duration::from_millis(2);
    let stream_count = streams.len();
    let mut next_stream = 0;
    let (mut packets, mut calls) = (0u64, 0u64);
    let cpu_start = thread_cpu_seconds();
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= options.duration {
            break;
        }
        let due = (options.packets_per_second * elapsed.as_secs_f64()) as u64;
        while packets < due {
            let count = options.batch.min((due - packets) as usize);
            addresses.clear();
            for buffer in &mut buffers[..count] {
                let stream = &mut streams[next_stream];
                next_stream = (next_stream + 1) % stream_count;
                write_header(buffer, 96, stream.seq, packets as u32, stream.ssrc);
                buffer.extend_from_slice(&payload);
                sealer.protect(buffer, stream.roc)?;
                stream.seq = stream.seq.wrapping_add(1);
                if stream.seq == 0 {
                    stream.roc = stream.roc.wrapping_add(1);
                }
                addresses.push(Some(stream.address));
            }
            let slices: Vec<[IoSlice<'_>; 1]> =
                buffers[..count].iter().map(|b| [IoSlice::new(b)]).collect();
            let results = sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                &slices,
                &addresses,
                [],
                MsgFlags::empty(),
            )
            .map_err(FloorError::Send)?;
            // A partial send leaves the rest for the next call, as a forwarder would.
            packets += results.count() as u64;
            calls += 1;
        }
        let into_tick = start.elapsed().as_nanos() % tick.as_nanos();
        thread::sleep(tick - Duration::from_nanos(into_tick as u64));
    }
    Ok(Sent {
        packets,
        calls,
        seconds: start.elapsed().as_secs_f64(),
        cpu_seconds: thread_cpu_seconds() - cpu_start,
    })
}

/// Reads every receiver in turn until told to stop ([`ReceiveMode::Poll`]); returns the
/// packets read.
fn receive_polling(
    receivers: &[UdpSocket],
    stop: &AtomicBool,
    cpu: Option<usize>,
) -> Result<u64, FloorError> {
    pin("receiving", cpu)?;
    let mut buffer = [0u8; 2_048];
    let mut received = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut any = false;
        for socket in receivers {
            while socket.recv(&mut buffer).is_ok() {
                received += 1;
                any = true;
            }
        }
        if !any {
            thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(received)
}

/// Reads each receiver from its own task on a Tokio runtime until told to stop
/// ([`ReceiveMode::Wait`]); returns the packets read.
fn receive_waiting(
    receivers: Vec<UdpSocket>,
    stop: &AtomicBool,
    cpu: Option<usize>,
) -> Result<u64, FloorError> {
    pin("receiving", cpu)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async move {
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let mut readers = tokio::task::JoinSet::new();
        for socket in receivers {
            let socket = tokio::net::UdpSocket::from_std(socket)?;
            let mut stopped = stopped.clone();
            readers.spawn(async move {
                let mut buffer = [0u8; 2_048];
                let mut received = 0u64;
                loop {
                    tokio::select! {
                        _ = stopped.changed() => break,
                        read = socket.recv(&mut buffer) => received += u64::from(read.is_ok()),
                    }
                }
                while socket.try_recv(&mut buffer).is_ok() {
                    received += 1;
                }
                received
            });
        }
        // The sender's thread owns the clock of the run; a check every 10 ms is a wake-up
        // of this runtime the sender does not pay.
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stopping.send(true);
        let mut received = 0;
        while let Some(read) = readers.join_next().await {
            received += read.map_err(|_| FloorError::Panicked("a receiving task"))?;
        }
        Ok(received)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> FloorOptions {
        FloorOptions {
            // 125 packets/s per receiver: a reading thread starved for half a second still
            // finds room in its socket buffers.
            receivers: 8,
            packets_per_second: 1_000.0,
            payload_bytes: 1_000,
            duration: Duration::from_millis(500),
            batch: 16,
            profile: Profile::Aes128Gcm,
            sender_cpu: None,
            receiver_cpu: None,
            receive: ReceiveMode::Poll,
        }
    }

    #[test]
    fn the_floor_delivers_the_paced_packets_and_counts_their_cpu() {
        for receive in [ReceiveMode::Poll, ReceiveMode::Wait] {
            let report = run(&FloorOptions {
                receive,
                ..options()
            })
            .unwrap();
            assert_eq!(report.receive, receive);
            // 1,000 packets/s for half a second, paced: never more than 500, and not far
            // fewer unless the machine starves the thread for a quarter of the run.
            assert!((250..=500).contains(&report.packets_sent), "{report:?}");
            // Loopback with a reader on every socket: everything arrives.
            assert_eq!(report.packets_received, report.packets_sent, "{report:?}");
            assert!(report.sendmmsg_calls < report.packets_sent, "{report:?}");
            assert!(report.sender_cpu_seconds > 0.0, "{report:?}");
            assert!(report.cpu_us_per_packet > 0.0, "{report:?}");
        }
    }

    #[test]
    fn options_out_of_range_are_refused_with_the_flag_named() {
        for (options, flag) in [
            (
                FloorOptions {
                    receivers: 0,
                    ..options()
                },
                "--receivers 0",
            ),
            (
                FloorOptions {
                    payload_bytes: 9_000,
                    ..options()
                },
                "--payload-bytes 9000",
            ),
            (
                FloorOptions {
                    batch: 0,
                    ..options()
                },
                "--batch 0",
            ),
            (
                FloorOptions {
                    packets_per_second: f64::NAN,
                    ..options()
                },
                "--packets-per-second NaN",
            ),
            (
                FloorOptions {
                    duration: Duration::ZERO,
                    ..options()
                },
                "--duration 0",
            ),
        ] {
            let error = run(&options).unwrap_err().to_string();
            assert!(error.contains(flag), "{error}");
        }
    }
}
