//! The five internal topics: their roles, required prefixes, partition rules and resolved names.

use crate::spec::{InternalTopicsSpec, RuntimeSpec, TopicSpec};
use crate::status::ResolvedTopics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicRole {
    Offset,
    Config,
    Status,
    DeadLetter,
    Error,
}

impl TopicRole {
    pub const ALL: [TopicRole; 5] = [
        Self::Offset,
        Self::Config,
        Self::Status,
        Self::DeadLetter,
        Self::Error,
    ];

    /// Field name in `spec.runtime.topics`.
    pub fn field(self) -> &'static str {
        match self {
            Self::Offset => "offset",
            Self::Config => "config",
            Self::Status => "status",
            Self::DeadLetter => "deadLetter",
            Self::Error => "error",
        }
    }

    /// Every name of this role must start with this (the managed product's rule).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Offset => "connect-offset",
            Self::Config => "connect-config",
            Self::Status => "connect-status",
            Self::DeadLetter | Self::Error => "connect-error",
        }
    }

    pub fn default_partitions(self) -> i32 {
        match self {
            Self::Offset => 12,
            Self::Config => 1,
            Self::Status | Self::DeadLetter | Self::Error => 6,
        }
    }

    /// Whether a partition count is allowed for this role, and why not if it is not.
    pub fn check_partitions(self, partitions: i32) -> Result<(), &'static str> {
        match self {
            Self::Offset if partitions < 2 => Err("the offset topic needs more than 1 partition"),
            Self::Config if partitions != 1 => {
                Err("the config topic must have exactly 1 partition")
            }
            _ if partitions < 1 => Err("a topic needs at least 1 partition"),
            _ => Ok(()),
        }
    }

    /// Offset, config and status keep only the latest record per key.
    pub fn compacted(self) -> bool {
        matches!(self, Self::Offset | Self::Config | Self::Status)
    }

    fn spec(self, topics: &InternalTopicsSpec) -> Option<&TopicSpec> {
        match self {
            Self::Offset => topics.offset.as_ref(),
            Self::Config => topics.config.as_ref(),
            Self::Status => topics.status.as_ref(),
            Self::DeadLetter => topics.dead_letter.as_ref(),
            Self::Error => topics.error.as_ref(),
        }
    }

    fn default_name(self, sink: &str) -> String {
        format!("{}-{sink}", self.prefix())
    }
}

/// An internal topic with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    pub role: TopicRole,
    pub name: String,
    pub partitions: i32,
    pub compacted: bool,
}

impl InternalTopic {
    pub fn resolve(role: TopicRole, sink: &str, runtime: &RuntimeSpec) -> Self {
        let spec = role.spec(&runtime.topics);
        Self {
            role,
            name: spec
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| role.default_name(sink)),
            partitions: spec
                .and_then(|s| s.partitions)
                .unwrap_or_else(|| role.default_partitions()),
            compacted: role.compacted(),
        }
    }

    /// All five topics in role order. Dead-letter and error may name the same topic; the
    /// result then holds it once (under DeadLetter) so it is created or checked once.
    pub fn resolve_all(sink: &str, runtime: &RuntimeSpec) -> Vec<Self> {
        let mut out: Vec<Self> = Vec::with_capacity(5);
        for role in TopicRole::ALL {
            let topic = Self::resolve(role, sink, runtime);
            if !out.iter().any(|t| t.name == topic.name) {
                out.push(topic);
            }
        }
        out
    }
}

/// Topic names as shown in status.
pub fn resolved_topics(sink: &str, runtime: &RuntimeSpec) -> ResolvedTopics {
    let name = |role| InternalTopic::resolve(role, sink, runtime).name;
    ResolvedTopics {
        offset: name(TopicRole::Offset),
        config: name(TopicRole::Config),
        status: name(TopicRole::Status),
        dead_letter: name(TopicRole::DeadLetter),
        error: name(TopicRole::Error),
    }
}
