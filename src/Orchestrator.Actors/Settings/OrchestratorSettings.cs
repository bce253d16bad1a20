using Akka.Configuration;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Settings;

/// <summary>Everything the node reads from the <c>orchestrator</c> HOCON section, read once at start.</summary>
public sealed record OrchestratorSettings(
    IReadOnlySet<string> Roles,
    string DataDir,
    HostId HostId,
    string ApiListen,
    HostSettings Host,
    SchedulerSettings Scheduler,
    MembershipSettings Cluster,
    ImageCatalog Images,
    string? HostLeaseConnection = null,
    ApiLimits? ApiLimits = null,
    Webhooks.WebhookSettings? Webhooks = null,
    LoggingSettings? Logging = null,
    string? SecretsKeyFile = null,
    StorageSettings? Storage = null,
    string? NetworkUnderlay = null,
    TelemetrySettings? Telemetry = null,
    Orchestrator.Hypervisor.Networking.HostNatSettings? NetworkNat = null,
    ImageImportSettings? ImageImport = null)
{
    /// <summary>Where imported images live and how big they may be; the defaults under the data directory when not configured.</summary>
    public ImageImportSettings EffectiveImageImport => ImageImport ?? ImageImportSettings.Default(DataDir);

    /// <summary>Host leases live in PostgreSQL only: SQLite is one machine, where the guard alone is enough.</summary>
    private static string? ResolveHostLeaseConnection(Config config, string dataDir)
    {
        if (!config.GetBoolean("orchestrator.persistence.host-leases", false))
        {
            return null;
        }

        return config.GetString("orchestrator.persistence.provider", "sqlite") == "postgres"
            ? OrchestratorConfig.StoreConnectionString(config, dataDir)
            : throw new ConfigurationException("orchestrator.persistence.host-leases needs the postgres provider");
    }

    public bool IsHost => Roles.Contains(OrchestratorRoles.Host);
    public bool IsControl => Roles.Contains(OrchestratorRoles.Control);

    /// <param name="dataDir">already resolved by the caller (flag, environment, default).</param>
    /// <param name="imageDir">where relative image paths point when the config names none.</param>
    /// <param name="machine">this machine's CPUs and memory, for a host whose config gives none.</param>
    public static OrchestratorSettings Create(Config config, string dataDir, string imageDir, MachineInventory machine)
    {
        var o = config.GetConfig("orchestrator") ?? throw new ConfigurationException("the orchestrator section is missing");
        var roles = o.GetStringList("roles").ToHashSet(StringComparer.Ordinal);
        foreach (var role in roles.Where(r => r != OrchestratorRoles.Host && r != OrchestratorRoles.Control))
        {
            throw new ConfigurationException($"orchestrator.roles: unknown role '{role}' (known: host, control)");
        }

        var hostId = o.GetString("host-id", "");
        if (string.IsNullOrWhiteSpace(hostId))
        {
            hostId = Environment.MachineName.ToLowerInvariant();
        }

        var configuredImageDir = o.GetString("image-dir", "");
        var imageImport = ImageImportSettings.Create(o.GetConfig("images-import"), dataDir);
        var host = HostSettings.Create(o.GetConfig("host"), machine) with
        {
            DiskCapacity = StorageSettings.DiskCapacity(o.GetConfig("storage")), NetCapacity = ResolveNetCapacity(o),
            ImageStore = imageImport.Store,
        };
        return new OrchestratorSettings(
            roles,
            dataDir,
            new HostId(hostId),
            o.GetString("api.listen", "127.0.0.1:7480"),
            host,
            SchedulerSettings.Create(o.GetConfig("scheduler")),
            MembershipSettings.Create(o.GetConfig("cluster"), config.GetConfig("akka.cluster"), host.FenceAfter),
            ImageCatalog.Create(o.GetConfig("images"), string.IsNullOrEmpty(configuredImageDir) ? imageDir : configuredImageDir),
            ResolveHostLeaseConnection(config, dataDir),
            ApiLimits.Create(o.GetConfig("api")),
            new Webhooks.WebhookSettings(
                Math.Clamp(o.GetInt("webhooks.attempts", 5), 1, 20),
                o.GetTimeSpan("webhooks.first-retry", TimeSpan.FromSeconds(1)),
                o.GetTimeSpan("webhooks.timeout", TimeSpan.FromSeconds(5)),
                o.GetBoolean("webhooks.allow-private-addresses", false)),
            LoggingSettings.Create(o.GetConfig("logging"), dataDir),
            o.GetString("secrets.key-file", "") is { Length: > 0 } keyFile ? keyFile : Path.Combine(dataDir, SecretBox.DefaultFileName),
            StorageSettings.Create(o.GetConfig("storage"), dataDir),
            ResolveUnderlay(o.GetString("network.underlay-address", "auto"), o.GetString("cluster.hostname", "127.0.0.1")),
            TelemetrySettings.Create(o.GetConfig("telemetry")),
            ResolveNat(o),
            imageImport);
    }

    /// <summary>
    /// <c>orchestrator.network.uplink</c> (auto: the default route's interface; off: no NAT, nothing leaves a network),
    /// <c>deny-cidrs</c> (absent: the underlay's subnet and link-local) and <c>transit-cidr</c>.
    /// </summary>
    public static Orchestrator.Hypervisor.Networking.HostNatSettings ResolveNat(Config o)
    {
        var uplink = o.GetString("network.uplink", "auto");
        var nat = new Orchestrator.Hypervisor.Networking.HostNatSettings(
            uplink is "auto" or "off" ? null : uplink,
            o.HasPath("network.deny-cidrs") ? o.GetStringList("network.deny-cidrs").ToList() : null,
            o.GetString("network.transit-cidr", Orchestrator.Hypervisor.Networking.HostNatSettings.DefaultTransit),
            Enabled: uplink != "off");
        return nat.Problem() is { } problem ? throw new ConfigurationException($"orchestrator.network.{problem}") : nat;
    }

    /// <summary><c>orchestrator.network.host-bps</c>: what the host's network carries per direction, bytes per second of frames (0: unknown, limits only).</summary>
    /// <exception cref="ConfigurationException">a negative figure.</exception>
    public static Orchestrator.Domain.Shares.HostNetCapacity ResolveNetCapacity(Config o)
    {
        var bps = o.HasPath("network.host-bps") ? o.GetLong("network.host-bps", 0) : 0;
        return bps < 0
            ? throw new ConfigurationException($"orchestrator.network.host-bps must be 0 or more, was {bps}")
            : new Orchestrator.Domain.Shares.HostNetCapacity(bps);
    }

    /// <summary><c>orchestrator.network.underlay-address</c>: an IPv4 address, <c>auto</c> (the cluster hostname when it is one and not loopback) or <c>off</c>.</summary>
    public static string? ResolveUnderlay(string configured, string clusterHostname) => configured switch
    {
        "off" or "" => null,
        "auto" => System.Net.IPAddress.TryParse(clusterHostname, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
                  && !System.Net.IPAddress.IsLoopback(ip) && !ip.Equals(System.Net.IPAddress.Any)
            ? ip.ToString()
            : null,
        _ => System.Net.IPAddress.TryParse(configured, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
             && configured.Count(c => c == '.') == 3
            ? ip.ToString()
            : throw new ConfigurationException($"orchestrator.network.underlay-address: '{configured}' is not an IPv4 address, auto or off"),
    };

    /// <summary>
    /// With the secrets key loaded (<see cref="SecretBox.Load"/>, creating its file when missing) on a node that may
    /// host the scheduler, which seals webhooks' secrets with it before journaling them.
    /// </summary>
    public OrchestratorSettings WithSecrets() => IsControl
        ? this with { Webhooks = (Webhooks ?? Orchestrator.Actors.Webhooks.WebhookSettings.Default) with { Secrets = SecretBox.Load(SecretsKeyFile!) } }
        : this;
}

/// <summary>
/// What the API lets through: requests per second and burst per tenant, the same per client address for requests
/// without a valid key, and the largest request body.
/// </summary>
public sealed record ApiLimits(int RequestsPerSecond = 50, int Burst = 100, long MaxBodyBytes = 1024 * 1024,
    int UnauthenticatedPerSecond = 5, int UnauthenticatedBurst = 20)
{
    public static readonly ApiLimits Default = new();

    public static ApiLimits Create(Config? c)
    {
        if (c is null)
        {
            return Default;
        }

        var limits = new ApiLimits(
            c.GetInt("rate-limit.requests-per-second", Default.RequestsPerSecond),
            c.GetInt("rate-limit.burst", Default.Burst),
            c.GetLong("max-body-bytes", Default.MaxBodyBytes),
            c.GetInt("rate-limit.unauthenticated.requests-per-second", Default.UnauthenticatedPerSecond),
            c.GetInt("rate-limit.unauthenticated.burst", Default.UnauthenticatedBurst));
        if (limits.RequestsPerSecond < 1 || limits.Burst < 1 || limits.MaxBodyBytes < 1024
            || limits.UnauthenticatedPerSecond < 1 || limits.UnauthenticatedBurst < 1)
        {
            throw new ConfigurationException(
                "orchestrator.api: rate-limit.requests-per-second, rate-limit.burst and their rate-limit.unauthenticated ones must be at " +
                "least 1, max-body-bytes at least 1024");
        }

        return limits;
    }
}

public static class OrchestratorRoles
{
    public const string Host = "host";
    public const string Control = "control";
}

public sealed record HostSettings(
    string Driver,
    int Cpus,
    long MemoryMiB,
    string QemuBinary,
    string Accel,
    TimeSpan HeartbeatInterval,
    TimeSpan FenceAfter,
    TimeSpan StopTimeout,
    TimeSpan VcpuSampleInterval,
    TimeSpan RegisterInterval,
    RestartBackoff Backoff,
    string? Cpuset = null,
    CgroupMode Cgroups = CgroupMode.Auto,
    TimeSpan UsageReportInterval = default,
    int CgroupWeight = 0,
    int SimulatedHosts = 0,
    AccelProbeSettings? AccelProbe = null,
    IReadOnlyDictionary<string, string>? Labels = null,
    Orchestrator.Domain.Shares.HostDiskCapacity? DiskCapacity = null,
    Orchestrator.Domain.Shares.HostNetCapacity? NetCapacity = null,
    string? ImageStore = null)
{
    /// <summary>What the host's network carries per direction (<c>orchestrator.network.host-bps</c>), divided among its VMs' NICs.</summary>
    public Orchestrator.Domain.Shares.HostNetCapacity EffectiveNetCapacity => NetCapacity ?? new Orchestrator.Domain.Shares.HostNetCapacity(0);

    /// <summary>What the host's storage does at most (<c>orchestrator.storage.host-iops</c>, <c>host-bps</c>), divided among its VMs' disks.</summary>
    public Orchestrator.Domain.Shares.HostDiskCapacity EffectiveDiskCapacity => DiskCapacity ?? StorageSettings.DefaultDiskCapacity;

    /// <summary>How the host proves its accelerator; the defaults when not configured.</summary>
    public AccelProbeSettings EffectiveAccelProbe => AccelProbe ?? AccelProbeSettings.Default;

    /// <summary>How the host's VMs together weigh against the machine's other processes (cpu.shares units).</summary>
    public int EffectiveCgroupWeight => CgroupWeight > 0 ? CgroupWeight : (int)Math.Clamp(Cpus * 1024L, VmResources.MinShares, VmResources.MaxShares);

    /// <summary><c>orchestrator.host.labels</c>: the host's labels when it first registers (an admin's <c>host label</c> after).</summary>
    private static SortedDictionary<string, string>? HostLabels(Config c)
    {
        if (c.GetConfig("labels") is not { IsEmpty: false } section)
        {
            return null;
        }

        var labels = new SortedDictionary<string, string>(section.AsEnumerable().ToDictionary(kv => kv.Key, kv => kv.Value.GetString()),
            StringComparer.Ordinal);
        if (VmLabels.Validate(labels).FirstOrDefault() is { } bad)
        {
            throw new ConfigurationException($"orchestrator.host.{bad.Field}: {bad.Message}");
        }

        return labels;
    }

    /// <param name="machine">what <c>cpus</c> and <c>memory-mib</c> default to (cpus: the cpuset's count first).</param>
    public static HostSettings Create(Config c, MachineInventory machine)
    {
        var cpuset = c.GetString("cpuset", "") is { Length: > 0 } set ? set : null;
        IReadOnlyList<int> cpusetCpus = [];
        if (cpuset is not null && !CpuSet.TryParse(cpuset, out cpusetCpus, out var cpusetError))
        {
            throw new ConfigurationException($"orchestrator.host.cpuset: {cpusetError}");
        }

        var cgroups = c.GetString("cgroups", "auto") switch
        {
            "auto" => CgroupMode.Auto,
            "off" => CgroupMode.Off,
            "required" => CgroupMode.Required,
            var other => throw new ConfigurationException($"orchestrator.host.cgroups: unknown '{other}' (known: auto, off, required)"),
        };
        var settings = new HostSettings(
            c.GetString("driver", "qemu"),
            c.GetInt("cpus", 0) is > 0 and var cpus ? cpus : cpuset is not null ? cpusetCpus.Count : machine.Cpus,
            c.GetLong("memory-mib", 0) is > 0 and var mem ? mem : machine.MemoryMiB,
            c.GetString("qemu-binary", "qemu-system-x86_64"),
            c.GetString("accel", "auto"),
            c.GetTimeSpan("heartbeat-interval", TimeSpan.FromMilliseconds(500)),
            c.GetTimeSpan("fence-after", TimeSpan.FromSeconds(15)),
            c.GetTimeSpan("stop-timeout", TimeSpan.FromSeconds(10)),
            c.GetTimeSpan("vcpu-sample-interval", TimeSpan.FromSeconds(1)),
            c.GetTimeSpan("register-interval", TimeSpan.FromSeconds(5)),
            new RestartBackoff(
                c.GetTimeSpan("restart-backoff.initial", TimeSpan.FromMilliseconds(500)),
                c.GetTimeSpan("restart-backoff.max", TimeSpan.FromSeconds(30)),
                c.GetTimeSpan("restart-backoff.reset-after-stable", TimeSpan.FromSeconds(60))),
            cpuset is null ? null : CpuSet.Format(cpusetCpus),
            cgroups,
            c.GetTimeSpan("usage-report-interval", TimeSpan.FromSeconds(2)),
            c.GetInt("cgroup-weight", 0),
            c.GetInt("simulated-hosts", 0),
            AccelProbeSettings.Create(c.GetConfig("accel-probe")),
            HostLabels(c));
        if (settings.CgroupWeight != 0 && settings.CgroupWeight is < VmResources.MinShares or > VmResources.MaxShares)
        {
            throw new ConfigurationException(
                $"orchestrator.host.cgroup-weight must be 0 (the host's CPUs × 1024) or between {VmResources.MinShares} and {VmResources.MaxShares}, was {settings.CgroupWeight}");
        }

        if (settings.HeartbeatInterval * 2 >= settings.FenceAfter)
        {
            throw new ConfigurationException(
                $"orchestrator.host.heartbeat-interval ({settings.HeartbeatInterval.TotalMilliseconds} ms) must be under half of " +
                $"fence-after ({settings.FenceAfter.TotalMilliseconds} ms), or a healthy node would be fenced");
        }

        if (settings.Driver is not ("qemu" or "kvm" or "auto" or "simulated"))
        {
            throw new ConfigurationException($"orchestrator.host.driver: unknown driver '{settings.Driver}' (known: qemu, kvm, auto, simulated)");
        }

        if ((settings.Driver == "simulated") != (settings.SimulatedHosts > 0) || settings.SimulatedHosts is < 0 or > 99_999)
        {
            throw new ConfigurationException(
                $"orchestrator.host.simulated-hosts must be 1-99999 with driver = simulated and 0 otherwise, was {settings.SimulatedHosts} with driver = {settings.Driver}");
        }

        if (settings.Accel is not ("auto" or "kvm" or "tcg"))
        {
            throw new ConfigurationException($"orchestrator.host.accel: unknown accelerator '{settings.Accel}' (known: auto, kvm, tcg)");
        }

        return settings;
    }
}

/// <summary>
/// How a host learns its accelerator: it boots <paramref name="Image"/> (a catalog image that prints the demo banner)
/// under KVM with each candidate CPU model, waiting <paramref name="Deadline"/> for each, and keeps the verdict in
/// <paramref name="CacheFile"/> ("" = accel-probe.json in the data directory) until the boot, the binary or the image changes.
/// </summary>
public sealed record AccelProbeSettings(TimeSpan Deadline, string Image, string CacheFile)
{
    public static readonly AccelProbeSettings Default = new(TimeSpan.FromSeconds(5), "demo", "");

    public static AccelProbeSettings Create(Config? c)
    {
        if (c is null || c.IsEmpty)
        {
            return Default;
        }

        var settings = new AccelProbeSettings(
            c.GetTimeSpan("deadline", Default.Deadline),
            c.GetString("image", Default.Image),
            c.GetString("cache-file", Default.CacheFile));
        if (settings.Deadline <= TimeSpan.Zero || settings.Deadline > TimeSpan.FromMinutes(10))
        {
            throw new ConfigurationException(
                $"orchestrator.host.accel-probe.deadline must be above 0 and at most 10 minutes, was {settings.Deadline.TotalMilliseconds} ms");
        }

        if (settings.Image.Length == 0)
        {
            throw new ConfigurationException("orchestrator.host.accel-probe.image must name a catalog image");
        }

        return settings;
    }

    /// <summary>Where the verdict is kept for a probe of <paramref name="kind"/> ("qemu" or "kvm").</summary>
    public string CachePath(string dataDir, string kind)
    {
        var path = CacheFile.Length == 0 ? Path.Combine(dataDir, "accel-probe.json") : CacheFile;
        return Path.ChangeExtension(path, null) + "." + kind + Path.GetExtension(path);
    }
}

/// <summary>Whether the host enforces shares, reservations and limits with cgroups.</summary>
public enum CgroupMode
{
    /// <summary>Where the kernel offers cgroups (v2, or v1 with cpu/cpuacct/cpuset/memory); otherwise warn and run unenforced.</summary>
    Auto,

    Off,

    /// <summary>Refuse to start without usable cgroups.</summary>
    Required,
}

/// <summary>How long the scheduler waits after a host is gone before it re-places the host's VMs.</summary>
/// <param name="AfterDown">after the member was downed: its guard has been counting since it lost the majority.</param>
/// <param name="AfterLeave">after a graceful leave or an agent's death: its guard only starts counting then.</param>
public sealed record HostLossTimings(TimeSpan AfterDown, TimeSpan AfterLeave)
{
    /// <summary>Slack for clocks and schedulers: a fence that fires a little late must still be first.</summary>
    public static readonly TimeSpan Safety = TimeSpan.FromSeconds(1);
}

/// <summary>Membership: where this node listens, whom it joins, and the fencing timings that must agree.</summary>
public sealed record MembershipSettings(
    string Hostname,
    int Port,
    IReadOnlyList<string> Seeds,
    bool Bootstrap,
    TimeSpan StableAfter,
    HostLossTimings HostLoss)
{
    public static MembershipSettings Create(Config c, Config akkaCluster, TimeSpan fenceAfter)
    {
        var seeds = c.GetStringList("seeds").ToList();
        foreach (var seed in seeds)
        {
            if (!Akka.Actor.Address.TryParse(seed, out _))
            {
                throw new ConfigurationException($"orchestrator.cluster.seeds: '{seed}' is not an address like akka.tcp://orchestrator@10.0.0.1:4053");
            }
        }

        var bootstrap = c.GetString("bootstrap", "auto") switch
        {
            "auto" => seeds.Count == 0,
            "on" or "true" or "yes" => true,
            "off" or "false" or "no" => false,
            var other => throw new ConfigurationException($"orchestrator.cluster.bootstrap: '{other}' is not one of auto, on, off"),
        };
        var stableAfter = akkaCluster.GetTimeSpan("split-brain-resolver.stable-after", TimeSpan.FromSeconds(20));
        var afterDown = c.GetString("replace-after-down", "auto") == "auto"
            ? Max(TimeSpan.Zero, fenceAfter - stableAfter) + HostLossTimings.Safety
            : c.GetTimeSpan("replace-after-down");
        // What the majority waits from losing sight of a host to starting its VMs again must exceed how long that
        // host's guard can keep them running after it lost the majority (I3).
        if (stableAfter + afterDown < fenceAfter + HostLossTimings.Safety)
        {
            throw new ConfigurationException(
                $"fencing timings conflict: a partitioned host kills its VMs {fenceAfter.TotalSeconds} s (fence-after) after " +
                $"losing the majority, but the majority restarts them after {stableAfter.TotalSeconds} s (stable-after) + " +
                $"{afterDown.TotalSeconds} s (orchestrator.cluster.replace-after-down) = {(stableAfter + afterDown).TotalSeconds} s; " +
                $"that must be at least fence-after + {HostLossTimings.Safety.TotalSeconds} s");
        }

        return new MembershipSettings(
            c.GetString("hostname", "127.0.0.1"),
            c.GetInt("port", 0),
            seeds,
            bootstrap,
            stableAfter,
            new HostLossTimings(afterDown, fenceAfter + HostLossTimings.Safety));
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}

public sealed record SchedulerSettings(
    int SnapshotEvery,
    PlacementPolicy Placement,
    VmSpecLimits Limits,
    TimeSpan SharesInterval = default,
    long SharesToleranceMillicores = 25)
{
    public static SchedulerSettings Create(Config c)
    {
        var strategy = c.GetString("strategy", "spread") switch
        {
            "spread" => PlacementStrategy.Spread,
            "pack" => PlacementStrategy.Pack,
            var other => throw new ConfigurationException($"orchestrator.scheduler.strategy: unknown '{other}' (known: spread, pack)"),
        };
        return new SchedulerSettings(
            Math.Max(1, c.GetInt("snapshot-every", 1000)),
            new PlacementPolicy(c.GetDouble("cpu-allocation-ratio", 4.0), c.GetDouble("memory-allocation-ratio", 1.0), strategy,
                Math.Max(0, c.GetInt("ha-headroom-hosts", 0))),
            new VmSpecLimits(
                c.GetInt("limits.max-vcpus", 64),
                c.GetInt("limits.min-memory-mib", 64),
                c.GetInt("limits.max-memory-mib", 1024 * 1024)),
            c.GetTimeSpan("shares.interval", TimeSpan.FromSeconds(2)),
            Math.Max(0, c.GetLong("shares.tolerance-millicores", 25)));
    }

    public LedgerRules Rules(ImageCatalog images) => new(Placement, Limits, images.Names);
}

/// <summary>
/// Name → files, as the config gives them; the node leaves out those whose files are missing when it starts
/// (<see cref="LeaveOutMissing"/>). Tenants name images; they never give paths.
/// </summary>
public sealed class ImageCatalog
{
    private readonly IReadOnlyList<GuestImage> _configured;
    private readonly Dictionary<string, GuestImage> _images;

    public ImageCatalog(IEnumerable<GuestImage> images, IReadOnlyList<string> problems)
    {
        _configured = images.ToList();
        _images = _configured.ToDictionary(i => i.Name, StringComparer.Ordinal);
        Names = _images.Keys.ToHashSet(StringComparer.Ordinal);
        Problems = problems;
    }

    public IReadOnlySet<string> Names { get; }

    /// <summary>Images left out of the catalog and why (the node logs them).</summary>
    public IReadOnlyList<string> Problems { get; }

    public IEnumerable<GuestImage> All => _images.Values.OrderBy(i => i.Name, StringComparer.Ordinal);

    public GuestImage? Find(string name) => _images.GetValueOrDefault(name);

    /// <summary>Every image the config names, with its paths made absolute against <paramref name="imageDir"/>; no file is looked at.</summary>
    public static ImageCatalog Create(Config? images, string imageDir)
    {
        var configured = new List<GuestImage>();
        if (images is null)
        {
            return new ImageCatalog(configured, []);
        }

        foreach (var (name, _) in images.AsEnumerable().Select(kv => (kv.Key.Split('.')[0], kv.Value)).DistinctBy(kv => kv.Item1))
        {
            var entry = images.GetConfig(name);
            var rootDisk = entry.GetString("root-disk", "");
            var append = entry.GetString("append", "");
            configured.Add(new GuestImage(
                name,
                Path.GetFullPath(entry.GetString("kernel", ""), imageDir),
                Path.GetFullPath(entry.GetString("initrd", ""), imageDir),
                entry.GetString("description", ""),
                entry.GetBoolean("burn-cpu", false),
                string.IsNullOrWhiteSpace(rootDisk) ? null : Path.GetFullPath(rootDisk, imageDir),
                string.IsNullOrWhiteSpace(append) ? null : append));
        }

        return new ImageCatalog(configured, []);
    }

    /// <summary>
    /// The catalog without the images some of whose files are missing, each named in <see cref="Problems"/>.
    /// </summary>
    /// <param name="missingFiles">the files of an image that are not there (the node passes <c>GuestImageFiles.Missing</c>).</param>
    public ImageCatalog LeaveOutMissing(Func<GuestImage, IReadOnlyList<string>> missingFiles)
    {
        var found = new List<GuestImage>();
        var problems = Problems.ToList();
        foreach (var image in _configured)
        {
            var missing = missingFiles(image);
            if (missing.Count > 0)
            {
                problems.Add($"image '{image.Name}' left out: missing {string.Join(", ", missing)} (the images/build-*-image.sh scripts build the shipped images)");
                continue;
            }

            found.Add(image);
        }

        return new ImageCatalog(found, problems);
    }
}
