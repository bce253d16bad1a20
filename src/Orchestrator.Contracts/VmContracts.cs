// The HTTP API's VM shapes, written by the API and read by the CLI. States stay strings, so a server that learns a new
// state does not break an older client.
using System.Text.Json.Serialization;

namespace Orchestrator.Contracts;

/// <summary>
/// The body of <c>POST /v1/vms</c>. Everything optional so that the API names a missing field rather than failing; the
/// optional fields are left out when unset, so the server's defaults apply. <see cref="UserData"/> travels as base64, so
/// that any bytes (NUL included) reach the guest as they were.
/// </summary>
public sealed record CreateVmRequest(
    string? Name,
    int? Vcpus,
    int? MemoryMiB,
    string? Image,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? RestartPolicy,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? CpuShares = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? CpuReservationMillicores = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? CpuLimitMillicores = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? MemoryReservationMiB = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? MemoryLimitMiB = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Cpuset = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, string>? Labels = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Driver = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Accelerator = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Hostname = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? SshKeys = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] byte[]? UserData = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? DiskGiB = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? HostSelector = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Group = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<NicRequest>? Nics = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? Volumes = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? FromSnapshot = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? DiskIops = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? DiskBps = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? DiskShares = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? NetBps = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? NetShares = null)
{
    /// <summary>The most user-data bytes a VM may carry (64 KiB, as Nova), the Domain's limit: clients check it before sending.</summary>
    public const int MaxUserDataBytes = 64 * 1024;
}

/// <summary>
/// What a VM's guest is handed at boot, as shown: the hostname, each SSH key's fingerprint (as <c>ssh-keygen -l</c>
/// prints it), and the user-data's size and SHA-256, never its bytes (tenants put secrets there).
/// </summary>
public sealed record VmBootstrapDto(string Hostname, IReadOnlyList<string> SshKeyFingerprints, int UserDataBytes, string? UserDataSha256);

/// <summary>
/// A VM's resources as shown: what the tenant set (shares is the effective weight), what the scheduler entitles it to
/// now (reservations, then shares, capped by limits and by demand), and what its vCPUs used and wanted (used plus time
/// spent waiting for a CPU) over the last window. Disks: the caps set, the share weight, and the caps its host holds on
/// them now (the limits, or the VM's share of the host's disk when the limits together exceed it; null: none, or not running).
/// Network: the limit and share weight set, and what its host holds its NICs to now, each way: the guarantee under
/// contention (its share of the host's capacity) and the ceiling it may borrow up to (null: not shaped, or not running).
/// </summary>
public sealed record VmResourcesDto(
    int CpuShares,
    int CpuReservationMillicores,
    int? CpuLimitMillicores,
    int MemoryReservationMiB,
    int? MemoryLimitMiB,
    string? Cpuset,
    long? EntitledCpuMillicores,
    long? UsedCpuMillicores,
    long? DemandCpuMillicores,
    long? DiskIops = null,
    long? DiskBps = null,
    int? DiskShares = null,
    long? EntitledDiskIops = null,
    long? EntitledDiskBps = null,
    long? NetBps = null,
    int? NetShares = null,
    long? EntitledNetBps = null,
    long? EntitledNetCeilingBps = null);

public sealed record VcpuDto(int Index, int ThreadId, double CpuSeconds);

/// <summary>
/// A VM as the ledger has it; <see cref="VcpuThreads"/>, <see cref="ConsoleTail"/>, <see cref="Paused"/>, the used
/// and demanded CPU and <see cref="Guest"/> come from its host, when the host answered (<c>GET /v1/vms/{name}</c>).
/// </summary>
public sealed record VmDto(
    string Id,
    string Name,
    string Tenant,
    int Vcpus,
    int MemoryMiB,
    string Image,
    string RestartPolicy,
    string DesiredState,
    string State,
    string? Reason,
    string? Host,
    long Epoch,
    int? Pid,
    int Restarts,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ReadyAt,
    IReadOnlyList<VcpuDto> VcpuThreads,
    IReadOnlyList<string>? ConsoleTail,
    VmResourcesDto Resources,
    IReadOnlyDictionary<string, string> Labels,
    bool Paused,
    string? Driver,
    string? Accelerator,
    VmBootstrapDto? Bootstrap = null,
    GuestDto? Guest = null,
    VmDiskDto? Disk = null,
    IReadOnlyList<string>? HostSelector = null,
    string? Group = null,
    IReadOnlyList<NicDto>? Nics = null);

/// <summary>
/// A VM's persistent disk: its size, the pool that holds it (null until first placed), and the host whose own pool that
/// is (null on a shared pool: the disk follows the VM).
/// </summary>
public sealed record VmDiskDto(int SizeGiB, string? Pool, string? PinnedTo);

/// <summary>What the guest's own agent (qemu-guest-agent) last said about it; absent for a guest without one.</summary>
public sealed record GuestDto(string Os, string Hostname, IReadOnlyList<string> Addresses);

/// <summary>The state names of the API, in one place.</summary>
public static class VmStates
{
    public const string Pending = "Pending";
    public const string Starting = "Starting";
    public const string Running = "Running";
    public const string Ready = "Ready";
    public const string Stopping = "Stopping";
    public const string Stopped = "Stopped";
    public const string Failed = "Failed";
    public const string Restarting = "Restarting";
    public const string Deleting = "Deleting";
}

/// <summary>
/// An image a VM may be created from: a catalog image (<see cref="Kind"/> "catalog": only its name and description), or an
/// imported one ("imported": its id, whether it is public, its format, SHA-256, sizes, the catalog image whose kernel boots
/// it, and when it was imported).
/// </summary>
public sealed record ImageDto(
    string Name,
    string Description,
    string Kind = "catalog",
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Id = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Tenant = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Public = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Format = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Sha256 = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? Bytes = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? VirtualBytes = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Kernel = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTimeOffset? CreatedAt = null);

/// <summary><c>POST /v1/apply</c>: the plan, carried out unless a dry run; <see cref="Changed"/> counts the steps that change something.</summary>
public sealed record ApplyResultDto(bool DryRun, IReadOnlyList<ApplyStepDto> Steps, int Changed);

/// <summary>One step of an apply: action (create, update, replace, delete, unchanged; kept a string, as states are), VM, detail.</summary>
public sealed record ApplyStepDto(string Action, string Vm, string Detail);
