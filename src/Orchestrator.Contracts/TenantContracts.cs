// The HTTP API's tenant, key, webhook and rule shapes, written by the API and read by the CLI.
namespace Orchestrator.Contracts;

/// <summary>A tenant's limits; null: no limit.</summary>
/// <param name="StorageGiB">GiB of VM disks, volumes, snapshots and private imported images together.</param>
/// <param name="Addresses">addresses on the tenant's networks, one per NIC of its VMs.</param>
/// <param name="ForwardPorts">the host ports the tenant's port forwards may use ("20000-20099"); null: none.</param>
public sealed record QuotaDto(int? Vms, int? Vcpus, long? MemoryMiB, long? StorageGiB = null, int? Snapshots = null, int? Volumes = null,
    int? Networks = null, int? Addresses = null,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    string? ForwardPorts = null);

public sealed record CreateTenantRequest(string? Id, QuotaDto? Quota);

/// <summary>A tenant's CPU pool on each host (null shares: as much as its VMs' shares together).</summary>
public sealed record PoolDto(int? CpuShares, int? CpuReservationMillicores, int? CpuLimitMillicores);

/// <summary><c>quota</c> and <c>pool</c> each replace the tenant's whole quota or pool when given.</summary>
public sealed record UpdateTenantRequest(QuotaDto? Quota, bool? Disabled, PoolDto? Pool = null);

public sealed record CreateKeyRequest(string? Role, string? Name);

/// <summary>A key as listed: never its secret nor the secret's hash.</summary>
public sealed record KeyDto(string KeyId, string Tenant, string Role, string? Name, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

/// <summary>A key just issued: the only time <see cref="Key"/> is ever shown.</summary>
public sealed record IssuedKeyDto(string KeyId, string Tenant, string Role, string? Name, string Key);

public sealed record UsageDto(int Vms, int Vcpus, long MemoryMiB, long StorageGiB = 0, int Snapshots = 0, int Volumes = 0, int Networks = 0,
    int Addresses = 0);

/// <param name="Keys">the tenant's keys where an admin asked for one tenant; null in lists and for the tenant's own view.</param>
public sealed record TenantDto(string Id, bool Disabled, QuotaDto Quota, UsageDto Usage, IReadOnlyList<KeyDto>? Keys, PoolDto? Pool);

public sealed record CreateWebhookRequest(string? Url, List<string>? Events);

/// <summary>A webhook as listed: never its secret.</summary>
public sealed record WebhookDto(string Id, string Url, IReadOnlyList<string> Events, DateTimeOffset CreatedAt);

/// <summary>A webhook just registered: the only time <see cref="Secret"/> (its HMAC key) is shown.</summary>
public sealed record CreatedWebhookDto(string Id, string Url, IReadOnlyList<string> Events, string Secret);

/// <param name="Within">a duration as people write them: "90s", "10m", "2h", "1d".</param>
public sealed record RuleTriggerDto(string? Event, int? Count, string? Within);

public sealed record CreateRuleRequest(string? Name, RuleTriggerDto? On, string? Schedule, string? Action, Dictionary<string, string>? Selector);

public sealed record RuleDto(
    string Id, string Name, RuleTriggerDto? On, string? Schedule, string Action, IReadOnlyDictionary<string, string> Selector, DateTimeOffset CreatedAt);
