using System.Text.Json.Serialization;

namespace Orchestrator.Contracts;

/// <summary>POST /v1/secgroups: a security group of the acting tenant (no rules yet: it lets nothing more in).</summary>
public sealed record CreateSecurityGroupRequest(string? Name);

/// <summary>
/// POST /v1/secgroups/{name}/rules: allow <see cref="Protocol"/> (tcp, udp, icmp, any) to ports
/// <see cref="PortFrom"/>-<see cref="PortTo"/> (tcp and udp; PortTo defaults to PortFrom) from <see cref="RemoteCidr"/> or
/// from the NICs in <see cref="RemoteGroup"/>; neither: from anywhere.
/// </summary>
public sealed record SecurityRuleRequest(
    string? Protocol,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? PortFrom = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? PortTo = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? RemoteCidr = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? RemoteGroup = null);

public sealed record SecurityRuleDto(string Id, string Protocol, int PortFrom, int PortTo, string? RemoteCidr, string? RemoteGroup, string Text);

public sealed record SecurityGroupDto(string Id, string Name, string Tenant, IReadOnlyList<SecurityRuleDto> Rules, DateTimeOffset CreatedAt);

/// <summary>PUT /v1/vms/{name}/nics/{index}/secgroups: the NIC's groups, replaced whole (empty: none).</summary>
public sealed record NicSecurityGroupsRequest(IReadOnlyList<string>? Groups);
