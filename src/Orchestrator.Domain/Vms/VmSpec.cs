using System.Text.RegularExpressions;

namespace Orchestrator.Domain.Vms;

/// <summary>What the orchestrator does when a VM's process ends without being asked to (docker/nomad semantics).</summary>
public enum RestartPolicy
{
    /// <summary>Restart after any exit the orchestrator did not ask for, a clean guest power-off included.</summary>
    Always,

    /// <summary>Restart after a crash or a guest panic; a clean guest power-off leaves the VM Stopped.</summary>
    OnFailure,

    /// <summary>Never restart: a crash leaves the VM Failed, a power-off leaves it Stopped.</summary>
    Never,
}

public static class RestartPolicies
{
    public static string ToWire(this RestartPolicy policy) => policy switch
    {
        RestartPolicy.Always => "always",
        RestartPolicy.OnFailure => "on-failure",
        RestartPolicy.Never => "never",
        _ => throw new ArgumentOutOfRangeException(nameof(policy)),
    };

    public static bool TryParse(string? text, out RestartPolicy policy)
    {
        switch (text)
        {
            case "always": policy = RestartPolicy.Always; return true;
            case "on-failure": policy = RestartPolicy.OnFailure; return true;
            case "never": policy = RestartPolicy.Never; return true;
            default: policy = default; return false;
        }
    }
}

/// <summary>What a tenant asks for. Validated by <see cref="VmSpecValidator"/> before anything is persisted.</summary>
/// <remarks>
/// A ledger of a million VMs keeps a million of these. Most VMs set none of the fields after the restart policy, so those
/// (the restart policy too, when it is not the default) live in one record of their own that a spec without any of them
/// does not have (a spec is 48 bytes instead of 136);
/// from outside, it is a record with these properties like any other (<c>with</c>, equality, JSON).
/// </remarks>
public sealed record VmSpec
{
    /// <param name="Driver">
    /// The hypervisor driver the VM must run under ("kvm", "qemu"), placing it only on hosts that registered with it; null
    /// runs it under whichever driver its host has.
    /// </param>
    /// <param name="Accelerator">
    /// "kvm": the VM needs hardware acceleration, and waits Pending rather than run on a host whose probe fell back to TCG;
    /// null runs it on either.
    /// </param>
    /// <param name="Bootstrap">What the guest is handed at boot (hostname, SSH keys, user-data); null: only its name as hostname.</param>
    /// <param name="HostSelector">
    /// Terms on host labels that must all hold where the VM runs (<c>zone=a</c>, <c>zone!=a</c>, <c>ssd</c>, <c>!ssd</c>); null: any host.
    /// </param>
    /// <param name="Group">The tenant's server group the VM belongs to (its affinity policy applies); null: none.</param>
    /// <param name="Nics">Network cards on the tenant's networks; null or empty: none.</param>
    /// <param name="Volumes">The tenant's volumes to attach at create (by name). Only a create carries them: the ledger keeps
    /// attachments on the volumes, and the VM's recorded spec has none.</param>
    /// <param name="FromSnapshot">"VM/SNAPSHOT": the VM's disk is a copy-on-write clone of that snapshot of the tenant's (kept as
    /// where it came from); null: a disk of its own on its image.</param>
    public VmSpec(
        string Name, int Vcpus, int MemoryMiB, string Image, RestartPolicy RestartPolicy = RestartPolicy.OnFailure, VmResources? Resources = null,
        IReadOnlyDictionary<string, string>? Labels = null, string? Driver = null, string? Accelerator = null, VmBootstrap? Bootstrap = null,
        int? DiskGiB = null,
        IReadOnlyList<string>? HostSelector = null, string? Group = null,
        IReadOnlyList<Networks.VmNic>? Nics = null,
        IReadOnlyList<string>? Volumes = null,
        string? FromSnapshot = null)
    {
        this.Name = Name;
        this.Vcpus = Vcpus;
        this.MemoryMiB = MemoryMiB;
        this.Image = Image;
        _rare = RestartPolicy == RestartPolicy.OnFailure && Resources is null && Labels is null && Driver is null && Accelerator is null && Bootstrap is null && DiskGiB is null
            && HostSelector is null && Group is null && Nics is null && Volumes is null && FromSnapshot is null
            ? null
            : new Rare(RestartPolicy, Resources, Labels, Driver, Accelerator, Bootstrap, DiskGiB, HostSelector, Group, Nics, Volumes, FromSnapshot);
    }

    public string Name { get; init; }

    public int Vcpus { get; init; }

    public int MemoryMiB { get; init; }

    public string Image { get; init; }

    public RestartPolicy RestartPolicy
    {
        get => _rare?.RestartPolicy ?? RestartPolicy.OnFailure;
        init => _rare = Rare.OrNull((_rare ?? Rare.None) with { RestartPolicy = value });
    }

    public VmResources? Resources { get => _rare?.Resources; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { Resources = value }); }

    public IReadOnlyDictionary<string, string>? Labels { get => _rare?.Labels; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { Labels = value }); }

    public string? Driver { get => _rare?.Driver; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { Driver = value }); }

    public string? Accelerator { get => _rare?.Accelerator; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { Accelerator = value }); }

    public VmBootstrap? Bootstrap { get => _rare?.Bootstrap; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { Bootstrap = value }); }

    public int? DiskGiB { get => _rare?.DiskGiB; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { DiskGiB = value }); }

    public IReadOnlyList<string>? HostSelector { get => _rare?.HostSelector; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { HostSelector = value }); }

    public string? Group { get => _rare?.Group; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { Group = value }); }

    public IReadOnlyList<Networks.VmNic>? Nics { get => _rare?.Nics; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { Nics = value }); }

    public IReadOnlyList<string>? Volumes { get => _rare?.Volumes; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { Volumes = value }); }

    public string? FromSnapshot { get => _rare?.FromSnapshot; init => _rare = Rare.OrNull((_rare ?? Rare.None) with { FromSnapshot = value }); }

    // Null when every field in it is null: two equal specs then hold equal values here (records compare it by value).
    private readonly Rare? _rare;

    private sealed record Rare(
        RestartPolicy RestartPolicy, VmResources? Resources, IReadOnlyDictionary<string, string>? Labels, string? Driver, string? Accelerator, VmBootstrap? Bootstrap,
        int? DiskGiB, IReadOnlyList<string>? HostSelector, string? Group, IReadOnlyList<Networks.VmNic>? Nics, IReadOnlyList<string>? Volumes,
        string? FromSnapshot)
    {
        public static readonly Rare None = new(RestartPolicy.OnFailure, null, null, null, null, null, null, null, null, null, null, null);

        public static Rare? OrNull(Rare rare) => rare == None ? null : rare;
    }

    /// <summary>The disk a VM gets when it asks for no size.</summary>
    public const int DefaultDiskGiB = 1;

    /// <summary>The size of the VM's persistent disk in GiB (what its pool's capacity is charged).</summary>
    public int EffectiveDiskGiB => DiskGiB ?? DefaultDiskGiB;

    /// <summary>Shares, reservations and limits; the defaults when the tenant gave none.</summary>
    public VmResources EffectiveResources => Resources ?? VmResources.Default;

    /// <summary>Labels (key → value) that rules and apply select VMs by; empty when none.</summary>
    public IReadOnlyDictionary<string, string> EffectiveLabels => Labels ?? VmLabels.None;

    /// <summary>Equal specs, labels, host selectors and NICs compared by content (records compare collections by reference).</summary>
    public bool SameAs(VmSpec other) =>
        this with { Labels = null, HostSelector = null, Nics = null, Volumes = null } == other with { Labels = null, HostSelector = null, Nics = null, Volumes = null }
        && VmLabels.Same(EffectiveLabels, other.EffectiveLabels) && Placement.HostSelectors.Same(HostSelector, other.HostSelector)
        && (Nics ?? []).SequenceEqual(other.Nics ?? []);
}

/// <summary>The drivers a VM may ask to run under (hosts also register as "simulated", which no tenant asks for).</summary>
public static class VmDrivers
{
    public static readonly IReadOnlyList<string> Known = ["kvm", "qemu"];

    public static bool IsKnown(string? driver) => driver is not null && Known.Contains(driver, StringComparer.Ordinal);
}

/// <summary>The accelerators a VM may require: only hardware (a VM that runs anywhere names none).</summary>
public static class VmAccelerators
{
    public static readonly IReadOnlyList<string> Known = ["kvm"];

    public static bool IsKnown(string? accelerator) => accelerator is not null && Known.Contains(accelerator, StringComparer.Ordinal);
}

public static partial class VmLabels
{
    public static readonly IReadOnlyDictionary<string, string> None = new Dictionary<string, string>();

    public const int MaxLabels = 32;

    // \z, never $: in .NET '$' also matches before a final '\n', so "web\n" would pass.
    [GeneratedRegex(@"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?\z", RegexOptions.CultureInvariant)]
    private static partial Regex KeyPattern();

    [GeneratedRegex(@"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex ValuePattern();

    public static bool Same(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b)
    {
        // The capacity index asks at every host update, nearly always of two empty (or the very same) label sets.
        if (ReferenceEquals(a, b) || (a.Count == 0 && b.Count == 0))
        {
            return true;
        }

        if (a.Count != b.Count)
        {
            return false;
        }

        foreach (var (key, value) in a)
        {
            if (!b.TryGetValue(key, out var other) || other != value)
            {
                return false;
            }
        }

        return true;
    }

    public static IEnumerable<FieldError> Validate(IReadOnlyDictionary<string, string> labels)
    {
        if (labels.Count > MaxLabels)
        {
            yield return new FieldError("labels", $"at most {MaxLabels} labels, was {labels.Count}");
            yield break;
        }

        foreach (var (key, value) in labels)
        {
            var shownKey = FieldError.Echo(key);
            if (!KeyPattern().IsMatch(key))
            {
                yield return new FieldError("labels", $"key '{shownKey}' must be 1-63 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit");
            }
            else if (value is null || !ValuePattern().IsMatch(value))
            {
                yield return new FieldError($"labels.{key}", "must be at most 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit");
            }
        }
    }
}

/// <summary>One thing wrong with a request, named by the field a person typed.</summary>
public sealed record FieldError(string Field, string Message)
{
    /// <summary>
    /// The most errors one answer lists: more say nothing more useful, and a request listing a hundred thousand bad
    /// values must not get a hundred thousand errors back.
    /// </summary>
    public const int MaxListed = 50;

    /// <summary>The most characters of a request's own text that an error quotes back.</summary>
    public const int MaxEcho = 64;

    /// <summary>
    /// A piece of a request as an error (or a log line) may quote it: at most <see cref="MaxEcho"/> characters, control
    /// characters escaped, so that neither its length nor a newline in it gets through.
    /// </summary>
    public static string Echo(string? text)
    {
        if (text is null)
        {
            return "";
        }

        var cut = text.Length > MaxEcho ? MaxEcho - (char.IsHighSurrogate(text[MaxEcho - 1]) ? 1 : 0) : text.Length;
        var shown = new System.Text.StringBuilder(cut + 8);
        foreach (var c in text.AsSpan(0, cut))
        {
            _ = c switch
            {
                '\n' => shown.Append("\\n"),
                '\r' => shown.Append("\\r"),
                '\t' => shown.Append("\\t"),
                _ when char.IsControl(c) => shown.Append(System.FormattableString.Invariant($"\\u{(int)c:x4}")),
                _ => shown.Append(c),
            };
        }

        return cut < text.Length ? shown.Append('…').ToString() : shown.ToString();
    }

    /// <summary>At most <see cref="MaxListed"/> errors, the last saying how many more there were.</summary>
    public static IReadOnlyList<FieldError> Bounded(IReadOnlyList<FieldError> errors) =>
        errors.Count <= MaxListed
            ? errors
            : [.. errors.Take(MaxListed), new FieldError("more", $"{errors.Count - MaxListed} more errors not listed")];
}

/// <summary>Bounds on a single VM; the node reads them from config.</summary>
public sealed record VmSpecLimits(int MaxVcpus = 64, int MinMemoryMiB = 64, int MaxMemoryMiB = 1024 * 1024, int MaxDiskGiB = 16 * 1024)
{
    public static readonly VmSpecLimits Default = new();
}

public static partial class VmSpecValidator
{
    /// <summary>
    /// A DNS label: it is safe to show anywhere and is never used as a path or an argument anyway
    /// (drivers use the VM id). Anchored with \z: '$' would accept a trailing '\n'.
    /// </summary>
    [GeneratedRegex(@"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?\z", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    public static bool IsValidName(string? name) => name is not null && NamePattern().IsMatch(name);

    /// <param name="knownImages">the image names the tenant may boot (the catalog's and its imported ones); null: the image is
    /// checked later, by the ledger, which knows them all.</param>
    public static IReadOnlyList<FieldError> Validate(VmSpec spec, VmSpecLimits limits, IReadOnlySet<string>? knownImages)
    {
        var errors = new List<FieldError>();
        if (!IsValidName(spec.Name))
        {
            errors.Add(new FieldError("name",
                "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
        }

        if (spec.Vcpus < 1 || spec.Vcpus > limits.MaxVcpus)
        {
            errors.Add(new FieldError("vcpus", $"must be between 1 and {limits.MaxVcpus}, was {spec.Vcpus}"));
        }

        if (spec.MemoryMiB < limits.MinMemoryMiB || spec.MemoryMiB > limits.MaxMemoryMiB)
        {
            errors.Add(new FieldError("memoryMiB",
                $"must be between {limits.MinMemoryMiB} and {limits.MaxMemoryMiB} MiB, was {spec.MemoryMiB}"));
        }

        if (string.IsNullOrEmpty(spec.Image))
        {
            errors.Add(new FieldError("image", "is required"));
        }
        else if (knownImages is not null && !knownImages.Contains(spec.Image))
        {
            var shown = FieldError.Echo(spec.Image);
            errors.Add(new FieldError("image",
                $"unknown image '{shown}'; known images: {string.Join(", ", knownImages.Order(StringComparer.Ordinal))}"));
        }

        if (spec.DiskGiB is { } disk && (disk < 1 || disk > limits.MaxDiskGiB))
        {
            errors.Add(new FieldError("diskGiB", $"must be between 1 and {limits.MaxDiskGiB} GiB, was {disk}"));
        }

        if (spec.Resources is { } resources && spec.Vcpus >= 1 && spec.MemoryMiB >= limits.MinMemoryMiB)
        {
            errors.AddRange(resources.Validate(spec.Vcpus, spec.MemoryMiB));
        }

        if (spec.Labels is { } labels)
        {
            errors.AddRange(VmLabels.Validate(labels));
        }

        if (spec.Driver is { } driver && !VmDrivers.IsKnown(driver))
        {
            var shown = FieldError.Echo(driver);
            errors.Add(new FieldError("driver", $"unknown driver '{shown}'; known drivers: {string.Join(", ", VmDrivers.Known)}"));
        }

        if (spec.Accelerator is { } accelerator && !VmAccelerators.IsKnown(accelerator))
        {
            var shown = accelerator.Length > 64 ? accelerator[..64] + "…" : accelerator;
            errors.Add(new FieldError("accelerator",
                $"unknown accelerator '{shown}'; known accelerators: {string.Join(", ", VmAccelerators.Known)} (leave it out to run on any host)"));
        }

        if (spec.Bootstrap is { } bootstrap)
        {
            errors.AddRange(VmBootstraps.Validate(bootstrap));
        }

        if (spec.HostSelector is { } selector)
        {
            errors.AddRange(Placement.HostSelectors.Validate(selector));
        }

        if (spec.Group is { } group && !IsValidName(group))
        {
            errors.Add(new FieldError("group", $"'{FieldError.Echo(group)}' is not a group name: 1-63 lowercase letters, digits and '-', starting with a letter"));
        }

        if (!Enum.IsDefined(spec.RestartPolicy))
        {
            errors.Add(new FieldError("restartPolicy", "must be one of always, on-failure, never"));
        }

        return errors;
    }
}
