using System.Collections.Immutable;
using System.Globalization;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Networks;

/// <summary>
/// One allow rule for traffic into a NIC: a protocol, a port range (tcp and udp only) and where from — a CIDR, or the
/// addresses of every NIC in another group of the tenant's (<see cref="RemoteGroup"/>, a group name).
/// </summary>
public sealed record SecurityRule(string Id, string Protocol, int PortFrom, int PortTo, string? RemoteCidr, string? RemoteGroup)
{
    public const string Tcp = "tcp", Udp = "udp", Icmp = "icmp", Any = "any";

    public static readonly IReadOnlyList<string> Protocols = [Tcp, Udp, Icmp, Any];

    public bool HasPorts => Protocol is Tcp or Udp;

    /// <summary>"tcp 8080 from 10.0.1.0/24", "any from group web".</summary>
    public override string ToString() =>
        $"{Protocol}{(HasPorts ? " " + (PortFrom == PortTo ? PortFrom.ToString(CultureInfo.InvariantCulture) : $"{PortFrom}-{PortTo}") : "")} from " +
        (RemoteGroup is { } group ? $"group {group}" : RemoteCidr);

    /// <summary>
    /// The rule a client asked for, checked: a known protocol, ports 1-65535 with from ≤ to for tcp/udp (none for icmp and
    /// any), and exactly one of a valid CIDR or a group name (neither: from anywhere, 0.0.0.0/0). Each error names its field.
    /// </summary>
    public static (SecurityRule? Rule, IReadOnlyList<FieldError> Errors) Create(string id, string? protocol, int? portFrom, int? portTo,
        string? remoteCidr, string? remoteGroup)
    {
        var errors = new List<FieldError>();
        var proto = protocol?.ToLowerInvariant();
        if (proto is null || !Protocols.Contains(proto))
        {
            errors.Add(new FieldError("protocol", $"must be one of {string.Join(", ", Protocols)}, was '{FieldError.Echo(protocol ?? "")}'"));
        }

        var (from, to) = (portFrom ?? 0, portTo ?? portFrom ?? 0);
        if (proto is Tcp or Udp)
        {
            if (portFrom is not (>= 1 and <= 65535))
            {
                errors.Add(new FieldError("portFrom", $"must be a port from 1 to 65535 for {proto}, was {portFrom?.ToString(CultureInfo.InvariantCulture) ?? "missing"}"));
            }
            else if (to is < 1 or > 65535 || to < from)
            {
                errors.Add(new FieldError("portTo", $"must be a port from {from} (portFrom) to 65535, was {to}"));
            }
        }
        else if (proto is Icmp or Any && (portFrom is not null || portTo is not null))
        {
            errors.Add(new FieldError(portFrom is not null ? "portFrom" : "portTo", $"{proto} has no ports"));
        }

        string? cidr = null;
        if (remoteCidr is not null && remoteGroup is not null)
        {
            errors.Add(new FieldError("remoteGroup", "give either remoteCidr or remoteGroup, not both"));
        }
        else if (remoteGroup is not null && !VmSpecValidator.IsValidName(remoteGroup))
        {
            errors.Add(new FieldError("remoteGroup", $"'{FieldError.Echo(remoteGroup)}' is not a group name"));
        }
        else if (remoteGroup is null)
        {
            cidr = ParseRemote(remoteCidr ?? "0.0.0.0/0");
            if (cidr is null)
            {
                errors.Add(new FieldError("remoteCidr",
                    $"'{FieldError.Echo(remoteCidr ?? "")}' is not an IPv4 network like 10.0.1.0/24 (prefix 0-32, no host bits set)"));
            }
        }

        return errors.Count > 0
            ? (null, errors)
            : (new SecurityRule(id, proto!, proto is Tcp or Udp ? from : 0, proto is Tcp or Udp ? to : 0, cidr, remoteGroup), []);
    }

    /// <summary>"a.b.c.d/n" (n 0-32, no host bits set; a bare address is its /32) in canonical form, or null.</summary>
    private static string? ParseRemote(string text)
    {
        var parts = text.Split('/');
        var prefix = 32;
        if (parts.Length > 2 || !Ipv4Cidr.TryParseAddress(parts[0], out var address)
            || (parts.Length == 2 && (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > 32)))
        {
            return null;
        }

        var mask = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        return (address & ~mask) == 0 ? $"{Ipv4Cidr.Format(address)}/{prefix.ToString(CultureInfo.InvariantCulture)}" : null;
    }
}

/// <summary>A tenant's security group: a name unique in the tenant, and allow rules for traffic into the NICs it is attached to.</summary>
public sealed record SecurityGroupRecord(string Id, TenantId Tenant, string Name, ImmutableList<SecurityRule> Rules, DateTimeOffset CreatedAt)
{
    public const int MaxPerTenant = 16;

    public const int MaxRules = 64;
}

/// <summary>
/// One allow rule as a host enforces it: the group's rule with its remote group resolved to the members' addresses
/// (one /32 each), so that a host needs nothing but this to write its nftables rules.
/// </summary>
public sealed record InboundRule(string Protocol, int PortFrom, int PortTo, string Cidr);
