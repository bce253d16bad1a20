using System.Text.Json.Serialization;

namespace Orchestrator.Contracts;

/// <summary>POST /v1/networks: a network of the acting tenant. <see cref="Gateway"/> defaults to true.</summary>
public sealed record CreateNetworkRequest(
    string? Name,
    string? Cidr,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Gateway = null);

/// <summary>
/// A tenant network: its CIDR, whether its router (the first address) is the guests' gateway, its VXLAN id, and how many
/// addresses its VMs hold.
/// </summary>
public sealed record NetworkDto(string Id, string Name, string Tenant, string Cidr, bool Gateway, string Router, int Vni, int Addresses,
    DateTimeOffset CreatedAt);

/// <summary>A NIC asked for at VM create: a network of the tenant by name, and the address wanted (else the lowest free).</summary>
/// <param name="SecurityGroups">the tenant's security groups letting traffic in (none: only from its own network).</param>
public sealed record NicRequest(
    string? Network,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Ip = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? SecurityGroups = null);

/// <summary>A VM's NIC as shown: its network, the address the ledger gave it, its MAC and its security groups.</summary>
public sealed record NicDto(string Network, string? Ip, string? Mac,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? SecurityGroups = null);
