// The client's own copies of the HTTP API's JSON shapes (camelCase on the wire). States stay strings so
// a server that learns a new state does not break an older client.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.Cli;

public sealed record VcpuThread(int Index, long? ThreadId, double CpuSeconds);

public sealed record Vm(
    string Id,
    string Name,
    string? Tenant,
    int Vcpus,
    long MemoryMiB,
    string Image,
    string? RestartPolicy,
    string DesiredState,
    string State,
    string? Reason,
    string? Host,
    long Epoch,
    int? Pid,
    int Restarts,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ReadyAt,
    IReadOnlyList<VcpuThread>? VcpuThreads,
    VmResources? Resources = null,
    bool Paused = false,
    string? Driver = null,
    string? Accelerator = null);

/// <summary>Shares, reservations and limits as set, with what the scheduler entitles the VM to and what it used.</summary>
public sealed record VmResources(
    int CpuShares,
    int CpuReservationMillicores,
    int? CpuLimitMillicores,
    int MemoryReservationMiB,
    int? MemoryLimitMiB,
    string? Cpuset,
    long? EntitledCpuMillicores,
    long? UsedCpuMillicores,
    long? DemandCpuMillicores = null);

/// <summary><see cref="Vms"/> is kept raw: a count or a list of VMs, both render as a number.</summary>
public sealed record Host(
    string Id,
    string State,
    string? Driver,
    int Cpus,
    long MemoryMiB,
    int AllocatedVcpus,
    long AllocatedMemoryMiB,
    JsonElement Vms,
    long ReservedCpuMillicores = 0,
    long ReservedMemoryMiB = 0,
    string? Accelerator = null,
    string? CpuModel = null,
    string? AcceleratorNote = null);

public sealed record Image(string Name, string? Description);

public sealed record JsonQuota(long? Vms, long? Vcpus, long? MemoryMiB);

public sealed record TenantUsage(int Vms, int Vcpus, long MemoryMiB);

public sealed record ApiKeyInfo(string KeyId, string Tenant, string Role, string? Name, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

public sealed record JsonPool(int? CpuShares, int? CpuReservationMillicores, int? CpuLimitMillicores);

public sealed record Tenant(string Id, bool Disabled, JsonQuota Quota, TenantUsage Usage, IReadOnlyList<ApiKeyInfo>? Keys, JsonPool? Pool = null);

/// <summary>A key as issued: <see cref="Key"/> is shown this once.</summary>
public sealed record IssuedApiKey(string KeyId, string Tenant, string Role, string? Name, string Key);

/// <summary>GET /v1/capacity: the cluster's totals and what HA admission control keeps free.</summary>
public sealed record Capacity(
    int HostsUp,
    long Vcpus,
    long AllocatedVcpus,
    long MemoryMiB,
    long AllocatedMemoryMiB,
    long ReservedCpuMillicores,
    long ReservedMemoryMiB,
    int HaHeadroomHosts,
    long HaNeededVcpus,
    long HaNeededMemoryMiB,
    long HaSpareVcpus,
    long HaSpareMemoryMiB,
    bool HaHeadroomHolds);

/// <summary>POST /v1/apply: the plan, carried out unless a dry run; <see cref="Changed"/> counts the steps that change something.</summary>
public sealed record ApplyResult(bool DryRun, IReadOnlyList<ApplyStepResult> Steps, int Changed);

/// <summary>One step: create, update, replace, delete or unchanged (kept a string, as states are).</summary>
public sealed record ApplyStepResult(string Action, string Vm, string? Detail);

/// <summary>RFC 7807 problem details, as the API answers every error.</summary>
public sealed record ProblemDetails(
    string? Type,
    string? Title,
    int? Status,
    string? Detail,
    IReadOnlyDictionary<string, string[]>? Errors);

public sealed record CreateVmRequest(
    string Name,
    int Vcpus,
    int MemoryMiB,
    string Image,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? RestartPolicy,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? CpuShares = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? CpuReservationMillicores = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? CpuLimitMillicores = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? MemoryReservationMiB = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? MemoryLimitMiB = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Cpuset = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, string>? Labels = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Driver = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Accelerator = null);

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

internal static class ApiJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);
}
