namespace Orchestrator.Domain;

/// <summary>Identity of a VM for its whole life, across re-placements.</summary>
public readonly record struct VmId(Guid Value)
{
    public static VmId New() => new(Guid.NewGuid());

    /// <summary>32 lowercase hex digits: safe in paths, process names and QMP.</summary>
    public string Compact => Value.ToString("N");

    public static bool TryParse(string? text, out VmId id)
    {
        var ok = Guid.TryParse(text, out var guid);
        id = new VmId(guid);
        return ok;
    }

    public override string ToString() => Compact;
}

public readonly record struct TenantId(string Value)
{
    /// <summary>The operator's own tenant: owns what the admin key creates.</summary>
    public static readonly TenantId System = new("system");

    public override string ToString() => Value;
}

public readonly record struct HostId(string Value)
{
    public override string ToString() => Value;
}

/// <summary>
/// Fencing token: grows at every (re)placement of a VM. Only the holder of the current epoch may run it.
/// </summary>
public readonly record struct Epoch(long Value) : IComparable<Epoch>
{
    public static readonly Epoch Zero = new(0);
    public Epoch Next() => new(Value + 1);
    public int CompareTo(Epoch other) => Value.CompareTo(other.Value);
    public static bool operator <(Epoch a, Epoch b) => a.Value < b.Value;
    public static bool operator >(Epoch a, Epoch b) => a.Value > b.Value;
    public static bool operator <=(Epoch a, Epoch b) => a.Value <= b.Value;
    public static bool operator >=(Epoch a, Epoch b) => a.Value >= b.Value;
    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
