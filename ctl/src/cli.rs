//! The command line (clap derive): kubectl's global flags and every command with kubectl's
//! flag names, short options and defaults.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// rkubectl controls an rkube (or any Kubernetes) cluster, like kubectl.
#[derive(Debug, Parser)]
#[command(
    name = "rkubectl",
    about = "rkubectl controls the rkube cluster manager (kubectl-compatible)."
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's global flags.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The name of the kubeconfig cluster to use.
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The address and port of the Kubernetes API server.
    #[arg(short = 's', long, global = true)]
    pub server: Option<String>,
    /// Bearer token for authentication to the API server.
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// The length of time to wait before giving up on a single server request (0: none).
    #[arg(long = "request-timeout", global = true)]
    pub request_timeout: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply a configuration to a resource by file name or stdin.
    Apply(ApplyArgs),
    /// Create a resource from a file or from stdin, or a named kind of resource.
    Create(CreateArgs),
    /// Display one or many resources.
    Get(GetArgs),
    /// Show details of a specific resource or group of resources.
    Describe(DescribeArgs),
    /// Delete resources by file names, stdin, resources and names, or by label selector.
    Delete(DeleteArgs),
    /// Edit a resource on the server.
    Edit(EditArgs),
    /// Update fields of a resource.
    Patch(PatchArgs),
    /// Update the labels on a resource.
    Label(LabelArgs),
    /// Update the annotations on a resource.
    Annotate(LabelArgs),
    /// Set a new size for a deployment, replica set, or stateful set.
    Scale(ScaleArgs),
    /// Manage the rollout of a resource.
    Rollout(RolloutArgs),
    /// Set specific features on objects.
    Set(SetArgs),
    /// Take a deployment, replica set, pod or service and expose it as a new service.
    Expose(ExposeArgs),
    /// Print the logs for a container in a pod.
    Logs(LogsArgs),
    /// Experimental: Wait for a specific condition on one or many resources.
    Wait(WaitArgs),
    /// Mark node as unschedulable.
    Cordon(NodeArgs),
    /// Mark node as schedulable.
    Uncordon(NodeArgs),
    /// Drain node in preparation for maintenance.
    Drain(DrainArgs),
    /// Display resource (CPU/memory) usage.
    Top(TopArgs),
    /// Print the supported API resources on the server.
    #[command(name = "api-resources")]
    ApiResources(ApiResourcesArgs),
    /// Print the supported API versions on the server, in the form of "group/version".
    #[command(name = "api-versions")]
    ApiVersions,
    /// Get documentation for a resource.
    Explain(ExplainArgs),
    /// Display cluster information.
    #[command(name = "cluster-info")]
    ClusterInfo,
    /// Print the client and server version information.
    Version(VersionArgs),
    /// Modify kubeconfig files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Output shell completion code for the specified shell (bash, zsh, fish).
    Completion(CompletionArgs),
}

/// `--dry-run` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum DryRun {
    /// Write to the server.
    #[default]
    None,
    /// Only print what would be sent.
    Client,
    /// Ask the server to process the request without persisting it.
    Server,
}

impl DryRun {
    /// The suffix kubectl adds to its messages.
    pub fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }
}

/// `--validate` values: kubectl's, sent to the server as `fieldValidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Validate {
    /// Fail on unknown or duplicate fields.
    #[default]
    #[value(alias = "true")]
    Strict,
    /// Accept them with a warning.
    Warn,
    /// Drop them silently.
    #[value(alias = "false")]
    Ignore,
}

impl Validate {
    /// The `fieldValidation` query value.
    pub fn directive(self) -> &'static str {
        match self {
            Validate::Strict => "Strict",
            Validate::Warn => "Warn",
            Validate::Ignore => "Ignore",
        }
    }
}

/// `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The files that contain the configurations to apply (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Process the directory used in -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Apply on the server (server-side apply); `--server-side=false` for client-side apply.
    #[arg(long = "server-side", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub server_side: bool,
    /// Take ownership of fields other managers own (server-side apply).
    #[arg(long = "force-conflicts")]
    pub force_conflicts: bool,
    /// Name of the manager used to track field ownership.
    #[arg(long = "field-manager", default_value = "rkubectl")]
    pub field_manager: String,
    /// Delete objects of the selector that are not in the applied configuration.
    #[arg(long)]
    pub prune: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Output format (name, yaml, json).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// How the server treats unknown or duplicate fields.
    #[arg(long, value_enum, default_value = "strict", num_args = 0..=1, require_equals = true, default_missing_value = "strict")]
    pub validate: Validate,
}

/// `create`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    /// Files that contain the configuration to create.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Process the directory used in -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Output format.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Name of the manager used to track field ownership.
    #[arg(long = "field-manager", default_value = "rkubectl-create")]
    pub field_manager: String,
    /// How the server treats unknown or duplicate fields.
    #[arg(long, value_enum, default_value = "strict", num_args = 0..=1, require_equals = true, default_missing_value = "strict")]
    pub validate: Validate,
    /// A kind of object to create from flags.
    #[command(subcommand)]
    pub kind: Option<CreateKind>,
}

/// Flags the `create <kind>` commands share.
#[derive(Debug, Args, Clone)]
pub struct CreateCommon {
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Output format.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Name of the manager used to track field ownership.
    #[arg(long = "field-manager", default_value = "rkubectl-create")]
    pub field_manager: String,
    /// How the server treats unknown or duplicate fields.
    #[arg(long, value_enum, default_value = "strict", num_args = 0..=1, require_equals = true, default_missing_value = "strict")]
    pub validate: Validate,
}

/// `create <kind>`.
#[derive(Debug, Subcommand)]
pub enum CreateKind {
    /// Create a deployment with the specified name.
    #[command(alias = "deploy")]
    Deployment {
        /// Name.
        name: String,
        /// Image names to run (one container each).
        #[arg(long, required = true)]
        image: Vec<String>,
        /// Number of replicas to create.
        #[arg(short = 'r', long, default_value_t = 1)]
        replicas: i32,
        /// The containerPort that this deployment exposes.
        #[arg(long)]
        port: Option<i32>,
        /// Common flags.
        #[command(flatten)]
        common: CreateCommon,
    },
    /// Create a service using a specified subcommand.
    #[command(subcommand, alias = "svc")]
    Service(CreateService),
    /// Create a namespace with the specified name.
    #[command(alias = "ns")]
    Namespace {
        /// Name.
        name: String,
        /// Common flags.
        #[command(flatten)]
        common: CreateCommon,
    },
    /// Create a config map from a local file, directory or literal value.
    #[command(alias = "cm")]
    Configmap {
        /// Name.
        name: String,
        /// Key and literal value (`key=value`).
        #[arg(long = "from-literal")]
        from_literal: Vec<String>,
        /// A file (`[key=]path`) or directory to read keys from.
        #[arg(long = "from-file")]
        from_file: Vec<String>,
        /// Common flags.
        #[command(flatten)]
        common: CreateCommon,
    },
    /// Create a secret using a specified subcommand.
    #[command(subcommand)]
    Secret(CreateSecret),
}

/// `create service <type>`.
#[derive(Debug, Subcommand)]
pub enum CreateService {
    /// Create a ClusterIP service.
    Clusterip(ServiceFlags),
    /// Create a NodePort service.
    Nodeport(ServiceFlags),
    /// Create a LoadBalancer service.
    Loadbalancer(ServiceFlags),
}

/// Flags of `create service`.
#[derive(Debug, Args)]
pub struct ServiceFlags {
    /// Name.
    pub name: String,
    /// Port pairs `port[:targetPort]`.
    #[arg(long)]
    pub tcp: Vec<String>,
    /// Assign your own ClusterIP or set to 'None' for a 'headless' service.
    #[arg(long)]
    pub clusterip: Option<String>,
    /// Port used to expose the service on each node (NodePort).
    #[arg(long = "node-port")]
    pub node_port: Option<i32>,
    /// Common flags.
    #[command(flatten)]
    pub common: CreateCommon,
}

/// `create secret <type>`.
#[derive(Debug, Subcommand)]
pub enum CreateSecret {
    /// Create a secret from a local file, directory, or literal value.
    Generic {
        /// Name.
        name: String,
        /// Key and literal value (`key=value`).
        #[arg(long = "from-literal")]
        from_literal: Vec<String>,
        /// A file (`[key=]path`) or directory to read keys from.
        #[arg(long = "from-file")]
        from_file: Vec<String>,
        /// The type of secret to create.
        #[arg(long = "type")]
        type_: Option<String>,
        /// Common flags.
        #[command(flatten)]
        common: CreateCommon,
    },
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// `TYPE[,TYPE…] [NAME…]` or `TYPE/NAME …`.
    pub resources: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=…, custom-columns=….
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Selector (field query) to filter on.
    #[arg(long = "field-selector")]
    pub field_selector: Option<String>,
    /// List the requested object(s) across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// After listing/getting the requested object, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes to the requested object(s), without listing/getting first.
    #[arg(long = "watch-only")]
    pub watch_only: bool,
    /// When printing, show all labels as the last column.
    #[arg(long = "show-labels")]
    pub show_labels: bool,
    /// Sort list types using this field specification (a JSONPath expression).
    #[arg(long = "sort-by")]
    pub sort_by: Option<String>,
    /// Labels to print as columns.
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// Don't print headers.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
    /// Return large lists in chunks rather than all at once (0 disables).
    #[arg(long = "chunk-size", default_value_t = 500)]
    pub chunk_size: i64,
    /// Files identifying the resources to get.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Don't fail when the named objects do not exist.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
    /// Keep managedFields when printing objects in JSON or YAML.
    #[arg(long = "show-managed-fields")]
    pub show_managed_fields: bool,
}

/// `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// `TYPE [NAME_PREFIX]` or `TYPE/NAME`.
    pub resources: Vec<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Show events.
    #[arg(long = "show-events", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub show_events: bool,
}

/// `--cascade` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cascade {
    /// Dependents are deleted in the background.
    Background,
    /// Dependents are deleted before the owner.
    Foreground,
    /// Dependents are orphaned.
    Orphan,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// `TYPE NAME…`, `TYPE/NAME…`.
    pub resources: Vec<String>,
    /// Files containing the resources to delete.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Process the directory used in -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Selector (field query) to filter on.
    #[arg(long = "field-selector")]
    pub field_selector: Option<String>,
    /// Delete all resources of the types in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// The deletion cascading strategy.
    #[arg(long, value_enum, default_value = "background", num_args = 0..=1, require_equals = true, default_missing_value = "background")]
    pub cascade: Cascade,
    /// Seconds given to the resource to terminate gracefully (-1: its default).
    #[arg(long = "grace-period", default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// Signal the resource for immediate shutdown (grace period 1).
    #[arg(long)]
    pub now: bool,
    /// Immediately remove resources (grace period 0).
    #[arg(long)]
    pub force: bool,
    /// Wait for the resources to be gone before returning.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub wait: bool,
    /// How long to wait for the deletion (0: forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Treat "resource not found" as a successful delete.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Output mode (`name`).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    pub resources: Vec<String>,
    /// Output format of the edited text: yaml or json.
    #[arg(short = 'o', long, default_value = "yaml")]
    pub output: String,
    /// Name of the manager used to track field ownership.
    #[arg(long = "field-manager", default_value = "rkubectl-edit")]
    pub field_manager: String,
}

/// `patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    pub resources: Vec<String>,
    /// The patch to be applied to the resource JSON file.
    #[arg(short = 'p', long)]
    pub patch: Option<String>,
    /// A file containing a patch to be applied to the resource.
    #[arg(long = "patch-file")]
    pub patch_file: Option<String>,
    /// The type of patch being provided; one of [json merge strategic].
    #[arg(long = "type", default_value = "strategic")]
    pub type_: String,
    /// A file identifying the resource.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// The subresource to patch (status, scale).
    #[arg(long)]
    pub subresource: Option<String>,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Output format.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Name of the manager used to track field ownership.
    #[arg(long = "field-manager", default_value = "rkubectl-patch")]
    pub field_manager: String,
}

/// `label` and `annotate`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// `TYPE NAME… KEY=VAL… KEY-…` or `TYPE/NAME …`.
    pub args: Vec<String>,
    /// Allow existing keys to be overwritten.
    #[arg(long)]
    pub overwrite: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Select all resources of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Files identifying the resources.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Print the current labels or annotations.
    #[arg(long)]
    pub list: bool,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Output format.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    pub resources: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long)]
    pub replicas: i32,
    /// Precondition for current size.
    #[arg(long = "current-replicas", default_value_t = -1, allow_hyphen_values = true)]
    pub current_replicas: i32,
    /// Files identifying the resources.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Select all resources of the type.
    #[arg(long)]
    pub all: bool,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// `rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The rollout subcommand.
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// `rollout <subcommand>`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show the status of the rollout.
    Status {
        /// `TYPE NAME` or `TYPE/NAME`.
        resources: Vec<String>,
        /// Watch the status of the rollout until it's done.
        #[arg(short = 'w', long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
        watch: bool,
        /// The length of time to wait before ending watch (0: forever).
        #[arg(long, default_value = "0s")]
        timeout: String,
        /// Pin to a specific revision for showing its status.
        #[arg(long, default_value_t = 0)]
        revision: i64,
    },
    /// View rollout history.
    History {
        /// `TYPE NAME` or `TYPE/NAME`.
        resources: Vec<String>,
        /// See the details, including pod template, of the revision specified.
        #[arg(long, default_value_t = 0)]
        revision: i64,
    },
    /// Undo a previous rollout.
    Undo {
        /// `TYPE NAME` or `TYPE/NAME`.
        resources: Vec<String>,
        /// The revision to rollback to (0: the last revision).
        #[arg(long = "to-revision", default_value_t = 0)]
        to_revision: i64,
        /// Must be "none", "server", or "client".
        #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
        dry_run: DryRun,
    },
    /// Restart a resource.
    Restart {
        /// `TYPE NAME` or `TYPE/NAME`.
        resources: Vec<String>,
    },
    /// Mark the provided resource as paused.
    Pause {
        /// `TYPE NAME` or `TYPE/NAME`.
        resources: Vec<String>,
    },
    /// Resume a paused resource.
    Resume {
        /// `TYPE NAME` or `TYPE/NAME`.
        resources: Vec<String>,
    },
}

/// `set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The set subcommand.
    #[command(subcommand)]
    pub command: SetCommand,
}

/// `set <subcommand>`.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Update the image of a pod template.
    Image {
        /// `TYPE NAME CONTAINER=IMAGE…` or `TYPE/NAME CONTAINER=IMAGE…` (`*` for all).
        args: Vec<String>,
        /// Select all resources of the type.
        #[arg(long)]
        all: bool,
        /// Selector (label query) to filter on.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Must be "none", "server", or "client".
        #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
        dry_run: DryRun,
    },
}

/// `expose`.
#[derive(Debug, Args)]
pub struct ExposeArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    pub resources: Vec<String>,
    /// The port that the service should serve on.
    #[arg(long)]
    pub port: Option<String>,
    /// Port on the container that the service should direct traffic to.
    #[arg(long = "target-port")]
    pub target_port: Option<String>,
    /// The name for the newly created object.
    #[arg(long)]
    pub name: Option<String>,
    /// Type for this service: ClusterIP, NodePort, LoadBalancer, or ExternalName.
    #[arg(long = "type")]
    pub type_: Option<String>,
    /// The network protocol for the service to be created.
    #[arg(long)]
    pub protocol: Option<String>,
    /// A label selector to use for this service.
    #[arg(long)]
    pub selector: Option<String>,
    /// Labels to apply to the service created by this call.
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Output format.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// `POD`, `TYPE/NAME` (deploy/web), and optionally a container name.
    pub target: Vec<String>,
    /// Print the logs of this container.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Specify if the logs should be streamed.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print the logs for the previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Lines of recent log file to display (-1: all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub tail: i64,
    /// Only return logs newer than a relative duration like 5s, 2m, or 3h.
    #[arg(long)]
    pub since: Option<String>,
    /// Include timestamps on each line in the log output.
    #[arg(long)]
    pub timestamps: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Get all containers' logs in the pod(s).
    #[arg(long = "all-containers")]
    pub all_containers: bool,
    /// Prefix each log line with the log source (pod name and container name).
    #[arg(long)]
    pub prefix: bool,
    /// Maximum number of concurrent logs to follow when using a selector.
    #[arg(long = "max-log-requests", default_value_t = 5)]
    pub max_log_requests: usize,
}

/// `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// `TYPE NAME…` or `TYPE/NAME…`.
    pub resources: Vec<String>,
    /// The condition to wait on: `delete`, `condition=NAME[=VALUE]`, `jsonpath={…}=VALUE`.
    #[arg(long = "for")]
    pub for_: String,
    /// The length of time to wait before giving up.
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Select all resources of the type.
    #[arg(long)]
    pub all: bool,
    /// Files identifying the resources.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
}

/// `cordon` and `uncordon`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Node names.
    pub nodes: Vec<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// `drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Node names.
    pub nodes: Vec<String>,
    /// Selector (label query) to filter nodes on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Ignore DaemonSet-managed pods.
    #[arg(long = "ignore-daemonsets")]
    pub ignore_daemonsets: bool,
    /// Continue even if there are pods using emptyDir.
    #[arg(long = "delete-emptydir-data")]
    pub delete_emptydir_data: bool,
    /// Continue even if there are pods not managed by a controller.
    #[arg(long)]
    pub force: bool,
    /// Period of time in seconds given to each pod to terminate gracefully (-1: its default).
    #[arg(long = "grace-period", default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// The length of time to wait before giving up (0: forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Delete pods instead of evicting them.
    #[arg(long = "disable-eviction")]
    pub disable_eviction: bool,
    /// Label selector to filter pods on the node.
    #[arg(long = "pod-selector")]
    pub pod_selector: Option<String>,
    /// Must be "none", "server", or "client".
    #[arg(long = "dry-run", value_enum, default_value = "none", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// `node` or `pod`.
    #[command(subcommand)]
    pub command: TopCommand,
}

/// `top <what>`.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Display resource (CPU/memory) usage of nodes.
    #[command(alias = "nodes", alias = "no")]
    Node {
        /// Node name.
        name: Option<String>,
    },
    /// Display resource (CPU/memory) usage of pods.
    #[command(alias = "pods", alias = "po")]
    Pod {
        /// Pod name.
        name: Option<String>,
        /// Across all namespaces.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
    },
}

/// `api-resources`.
#[derive(Debug, Args)]
pub struct ApiResourcesArgs {
    /// Output format: wide or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub namespaced: Option<bool>,
    /// Limit to resources in the specified API group.
    #[arg(long = "api-group")]
    pub api_group: Option<String>,
    /// Limit to resources that support the specified verbs.
    #[arg(long, value_delimiter = ',')]
    pub verbs: Vec<String>,
    /// Don't print headers.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
    /// Sort by `name` or `kind`.
    #[arg(long = "sort-by")]
    pub sort_by: Option<String>,
    /// Limit to resources that belong to the specified categories.
    #[arg(long)]
    pub categories: Vec<String>,
}

/// `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// `TYPE[.FIELD…]`.
    pub resource: String,
    /// Print the fields of fields.
    #[arg(long)]
    pub recursive: bool,
    /// Use this group/version of the resource.
    #[arg(long = "api-version")]
    pub api_version: Option<String>,
}

/// `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print only the client version.
    #[arg(long)]
    pub client: bool,
    /// Output format: yaml or json.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `config <subcommand>`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Display merged kubeconfig settings or a specified kubeconfig file.
    View {
        /// Only the current context's entries.
        #[arg(long)]
        minify: bool,
        /// Display raw byte data and sensitive data.
        #[arg(long)]
        raw: bool,
        /// Output format: yaml or json.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// Describe one or many contexts.
    #[command(name = "get-contexts")]
    GetContexts {
        /// Context names.
        names: Vec<String>,
        /// Output format: name.
        #[arg(short = 'o', long)]
        output: Option<String>,
        /// Don't print headers.
        #[arg(long = "no-headers")]
        no_headers: bool,
    },
    /// Set the current-context in a kubeconfig file.
    #[command(name = "use-context", alias = "use")]
    UseContext {
        /// The context.
        name: String,
    },
    /// Set a context entry in kubeconfig.
    #[command(name = "set-context")]
    SetContext {
        /// The context (omit with --current). `--cluster`, `--user` and `--namespace` set
        /// the entry's fields.
        name: Option<String>,
        /// Modify the current context.
        #[arg(long)]
        current: bool,
    },
    /// Display the current-context.
    #[command(name = "current-context")]
    CurrentContext,
}

/// `completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash, zsh or fish.
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_side_defaults_on_and_can_be_turned_off() {
        let c = Cli::try_parse_from(["rkubectl", "apply", "-f", "x.yaml"]).unwrap();
        let Command::Apply(a) = c.command else {
            panic!()
        };
        assert!(a.server_side);
        assert_eq!(a.field_manager, "rkubectl");
        let c =
            Cli::try_parse_from(["rkubectl", "apply", "--server-side=false", "-f", "x"]).unwrap();
        let Command::Apply(a) = c.command else {
            panic!()
        };
        assert!(!a.server_side);
        let c = Cli::try_parse_from(["rkubectl", "apply", "--dry-run=server", "-f", "x"]).unwrap();
        let Command::Apply(a) = c.command else {
            panic!()
        };
        assert_eq!(a.dry_run, DryRun::Server);
    }

    #[test]
    fn global_flags_anywhere() {
        let c = Cli::try_parse_from(["rkubectl", "get", "pods", "-n", "demo", "--context", "x"])
            .unwrap();
        assert_eq!(c.global.namespace.as_deref(), Some("demo"));
        assert_eq!(c.global.context.as_deref(), Some("x"));
        let c = Cli::try_parse_from([
            "rkubectl",
            "-n",
            "a",
            "delete",
            "pod",
            "p",
            "--cascade=orphan",
        ])
        .unwrap();
        let Command::Delete(d) = c.command else {
            panic!()
        };
        assert_eq!(d.cascade, Cascade::Orphan);
        assert_eq!(c.global.namespace.as_deref(), Some("a"));
    }
}
