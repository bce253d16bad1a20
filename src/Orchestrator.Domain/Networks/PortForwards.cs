using System.Globalization;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Networks;

/// <summary>An inclusive range of ports, "20000-20099" (or one port, "20000"): what an admin grants a tenant for forwards.</summary>
public readonly record struct PortRange(int From, int To)
{
    public bool Contains(int port) => port >= From && port <= To;

    public override string ToString() => From == To
        ? From.ToString(CultureInfo.InvariantCulture)
        : $"{From.ToString(CultureInfo.InvariantCulture)}-{To.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>"A-B" or "A", each 1-65535, A ≤ B; the problem otherwise.</summary>
    public static bool TryParse(string? text, out PortRange range, out string problem)
    {
        range = default;
        var parts = (text ?? "").Split('-');
        if (parts.Length is < 1 or > 2 || !parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 65535))
        {
            problem = $"must be a port range like 20000-20099 (ports 1-65535), was '{FieldError.Echo(text ?? "")}'";
            return false;
        }

        var from = int.Parse(parts[0], CultureInfo.InvariantCulture);
        var to = parts.Length == 2 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : from;
        if (from > to)
        {
            problem = $"must go from the lower port to the higher, was '{FieldError.Echo(text!)}'";
            return false;
        }

        range = new PortRange(from, to);
        problem = "";
        return true;
    }
}

/// <summary>
/// A port forward: <see cref="HostPort"/> (of the tenant's granted range, unique in the cluster per protocol) on whichever
/// host runs the VM, to <see cref="GuestPort"/> of the VM's NIC <see cref="Nic"/> on network <see cref="NetworkId"/>.
/// </summary>
public sealed record PortForwardRecord(string Id, TenantId Tenant, string NetworkId, VmId Vm, int Nic, string Protocol, int HostPort,
    int GuestPort, DateTimeOffset CreatedAt)
{
    public const string Tcp = "tcp", Udp = "udp";

    /// <summary>Forwards one tenant may have.</summary>
    public const int MaxPerTenant = 64;
}

/// <summary>What a host programs for one forward of a NIC: DNAT from <see cref="HostPort"/> to the NIC's <see cref="GuestPort"/>.</summary>
public sealed record NicForward(string Protocol, int HostPort, int GuestPort);
