//! Why the core refuses a claim or a request, in words a user can act on.

use berth_i18n::api::Text;
use berth_i18n::text;

/// A claim could not be recorded; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// No device with this UUID is known to the cluster.
    #[error("unknown device {0}")]
    UnknownDevice(String),
    /// The device already holds a claim that overlaps the requested window (or the device was named
    /// twice in one claim).
    #[error("device {device} is already claimed for an overlapping window")]
    Overlap {
        /// UUID of the device that is already claimed.
        device: String,
    },
}

/// A request for devices that cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No device of this class is registered.
    UnknownClass {
        /// The class that was asked for.
        class: String,
    },
    /// Fewer devices are free for the whole window than were requested. When the request names a site,
    /// every count is for that site only.
    NotEnough {
        /// The class that was asked for.
        class: String,
        /// How many devices were asked for.
        requested: u32,
        /// How many schedulable devices are free for the whole window.
        free: u32,
        /// How many devices are schedulable now (healthy, on a ready node), free or not.
        schedulable: u32,
        /// How many devices the class has, schedulable or not.
        total: u32,
    },
    /// Not enough nodes have the devices a single- or multi-node job needs on each.
    NoNodeFits {
        /// The class asked for.
        class: String,
        /// Devices needed on each node.
        per_node: u32,
        /// Nodes needed.
        nodes: u32,
        /// Nodes with enough free devices.
        fitting: u32,
        /// The most free devices on any one node.
        most_free: u32,
    },
    /// The request itself is malformed (empty or inverted window, zero devices, bad step, ...).
    InvalidWindow {
        /// What is wrong with the request.
        reason: Text,
    },
}

impl Refusal {
    /// The refusal as a catalogue message with its values.
    pub fn text(&self) -> Text {
        match self {
            Refusal::UnknownClass { class } => text!(ClassHasNoDevices, class),
            Refusal::NotEnough {
                class,
                requested,
                free,
                schedulable,
                total,
            } => text!(NotEnoughFree, class, requested, free, total, schedulable),
            Refusal::NoNodeFits {
                class,
                per_node,
                nodes,
                fitting,
                most_free,
            } => text!(NoNodeFits, class, per_node, nodes, fitting, most_free),
            Refusal::InvalidWindow { reason } => text!(InvalidRequest, reason = @reason.clone()),
        }
    }
}

impl std::fmt::Display for Refusal {
    /// The English text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.text().fmt(f)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_enough_says_why() {
        let r = Refusal::NotEnough {
            class: "sim-gpu".into(),
            requested: 9,
            free: 8,
            schedulable: 8,
            total: 8,
        };
        assert_eq!(
            r.to_string(),
            "not enough sim-gpu devices free for the whole window: 9 requested, 8 free \
             (8 in the class, 8 schedulable)"
        );
    }

    #[test]
    fn claim_errors_name_the_device() {
        assert_eq!(
            ClaimError::UnknownDevice("GPU-1".into()).to_string(),
            "unknown device GPU-1"
        );
        assert_eq!(
            ClaimError::Overlap {
                device: "GPU-2".into()
            }
            .to_string(),
            "device GPU-2 is already claimed for an overlapping window"
        );
    }
}
