//! Options several subcommands share: the configuration file and the queue.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::{QueueSettings, Settings};
use crate::jobs::queues;

/// `--config`, on the commands that read the configuration. `demo` and the `bench-*`
/// commands run on their own defaults and do not offer it, so that no one believes a file
/// was applied when it was not.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArg {
    /// Config file (default: $PAYWORKER_CONFIG, else ./worker.yaml when present).
    // An id of its own: clap would merge a global argument with the top-level `--config`
    // of the same id, and a file named twice would go unnoticed.
    #[arg(
        id = "config_after",
        long = "config",
        value_name = "FILE",
        global = true
    )]
    pub config: Option<PathBuf>,
}

/// A queue the worker consumes: the only names a job may be written to or a dead letter
/// read from. Free text here once let a typo create a stream no worker reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum QueueName {
    /// `CreatePayment` jobs.
    CreatePayment,
    /// `ProcessNotification` jobs.
    ProcessNotification,
}

impl QueueName {
    /// The name in Redis keys and in the configuration (`queues.<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatePayment => queues::CREATE_PAYMENT,
            Self::ProcessNotification => queues::PROCESS_NOTIFICATION,
        }
    }

    /// This queue's section of `settings`.
    pub fn settings(self, settings: &Settings) -> &QueueSettings {
        match self {
            Self::CreatePayment => &settings.queues.create_payment,
            Self::ProcessNotification => &settings.queues.process_notification,
        }
    }

    /// `partition` if the configuration declares it for this queue, else an error that
    /// says which partitions there are.
    pub fn check_partition(self, settings: &Settings, partition: u32) -> anyhow::Result<u32> {
        let partitions = self.settings(settings).partitions;
        anyhow::ensure!(
            partition < partitions,
            "--partition {partition}: queue {} has {partitions} partition{} (0 to {}) in \
             queues.{}.partitions",
            self.as_str(),
            if partitions == 1 { "" } else { "s" },
            partitions.saturating_sub(1),
            self.as_str(),
        );
        Ok(partition)
    }

    /// `lane` if it is the default lane or one of this queue's `lanes`, else an error that
    /// says which lanes there are.
    pub fn check_lane<'a>(
        self,
        settings: &Settings,
        lane: Option<&'a str>,
    ) -> anyhow::Result<Option<&'a str>> {
        let Some(lane) = lane.filter(|l| *l != payworker_queue::DEFAULT_LANE) else {
            return Ok(None);
        };
        let lanes = &self.settings(settings).lanes;
        anyhow::ensure!(
            lanes.contains_key(lane),
            "--lane {lane}: queue {} has no such lane in queues.{}.lanes (it has: default{})",
            self.as_str(),
            self.as_str(),
            lanes
                .keys()
                .filter(|l| *l != payworker_queue::DEFAULT_LANE)
                .map(|l| format!(", {l}"))
                .collect::<String>(),
        );
        Ok(Some(lane))
    }
}
