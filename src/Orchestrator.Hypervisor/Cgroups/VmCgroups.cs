// The cgroups of one host's VMs: <root>[/<controller>]/orchestrator/<scope>/vm-<vmid>.
using System.Globalization;
using Orchestrator.Domain;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Hypervisor.Cgroups;

/// <summary>
/// The cgroups of one host's VMs, under one scope (the host id) so that several hosts on one machine, and
/// tests, keep apart. Not thread-safe: one owner (the host agent) drives it.
/// </summary>
public sealed class VmCgroups
{
    public const string TopName = "orchestrator";
    internal const string VmPrefix = "vm-";
    private static readonly string[] V2Controllers = ["cpu", "cpuset", "memory"];
    private static readonly string[] V2Required = ["cpu", "memory"];

    /// <param name="scope">An operator's host id, never tenant input: ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$.</param>
    public VmCgroups(CgroupLayout layout, string scope)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (!IsValidScope(scope))
        {
            throw new ArgumentException(
                $"cgroup scope '{scope}' must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                nameof(scope));
        }

        Layout = layout;
        Scope = scope;
        Mounts = CgroupMounts.For(layout);
    }

    public CgroupLayout Layout { get; }

    public string Scope { get; }

    internal CgroupMounts Mounts { get; }

    internal bool IsV1 => Layout.Version == CgroupVersion.V1;

    public static bool IsValidScope(string? scope)
    {
        if (string.IsNullOrEmpty(scope) || scope.Length > 64 || !char.IsAsciiLetterOrDigit(scope[0]))
        {
            return false;
        }

        foreach (var c in scope)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('_' or '.' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Creates orchestrator/ and orchestrator/&lt;scope&gt;/ in every controller, confines the scope to
    /// <paramref name="hostCpuset"/> (null: every CPU its parent has) and gives it
    /// <paramref name="scopeCpuWeight"/> (cpu.shares units; null: the default 1024). Idempotent: run it at every
    /// start of the node, before <see cref="Open"/>.
    /// </summary>
    public void PrepareScope(string? hostCpuset, int? scopeCpuWeight)
    {
        IReadOnlyList<int>? hostCpus = null;
        if (hostCpuset is not null)
        {
            hostCpus = CpuSet.TryParse(hostCpuset, out var cpus, out var error)
                ? cpus
                : throw new ArgumentException($"host cpuset: {error}", nameof(hostCpuset));
        }

        if (scopeCpuWeight is { } weight)
        {
            CgroupLimits.ValidateCpuWeight(weight, nameof(scopeCpuWeight));
        }

        if (IsV1)
        {
            PrepareV1(hostCpus, scopeCpuWeight ?? CgroupLimits.DefaultCpuWeight);
        }
        else
        {
            PrepareV2(hostCpus, scopeCpuWeight ?? CgroupLimits.DefaultCpuWeight);
        }
    }

    /// <summary>The VM's cgroup, created in every controller when missing (idempotent).</summary>
    public VmCgroup Open(VmId vmId)
    {
        foreach (var mount in Mounts.Distinct)
        {
            var scopeDir = ScopeDir(mount);
            if (!Directory.Exists(scopeDir))
            {
                throw new HypervisorException($"cgroup scope {scopeDir} does not exist: PrepareScope must run first");
            }

            CgroupFiles.CreateDirectory(VmDir(mount, vmId));
        }

        if (IsV1)
        {
            // A v1 cpuset starts with no CPUs and no memory nodes, and no task may join it until it has some.
            InheritCpuset(VmDir(Mounts.Cpuset, vmId), ScopeDir(Mounts.Cpuset));
        }

        return new VmCgroup(this, vmId);
    }

    /// <summary>The VMs with a cgroup in this scope in any controller (what a restarted node cleans up or adopts).</summary>
    public IReadOnlyList<VmId> List()
    {
        var found = new SortedDictionary<string, VmId>(StringComparer.Ordinal);
        foreach (var mount in Mounts.Distinct)
        {
            var scopeDir = ScopeDir(mount);
            if (!Directory.Exists(scopeDir))
            {
                continue;
            }

            foreach (var dir in Directory.EnumerateDirectories(scopeDir, VmPrefix + "*"))
            {
                var compact = System.IO.Path.GetFileName(dir)[VmPrefix.Length..];
                if (Guid.TryParseExact(compact, "N", out var guid) && guid.ToString("N") == compact)
                {
                    found[compact] = new VmId(guid);
                }
            }
        }

        return [.. found.Values];
    }

    /// <summary>
    /// Removes the VM's cgroup in every controller. False, leaving them, while processes are inside; true when
    /// they are gone, also when they never existed.
    /// </summary>
    public bool Remove(VmId vmId)
    {
        var dirs = Mounts.Distinct.Select(mount => VmDir(mount, vmId)).Where(Directory.Exists).ToList();
        if (dirs.Any(dir => CgroupFiles.ReadPids(System.IO.Path.Combine(dir, "cgroup.procs")).Count > 0))
        {
            return false;
        }

        foreach (var dir in dirs)
        {
            if (!RemoveCgroupDirectory(dir))
            {
                return false; // a process joined since the check
            }
        }

        return true;
    }

    /// <summary>
    /// Removes every VM cgroup of the scope, then the scope: for whoever ended the scope's VMs (a test, a benchmark)
    /// and now tidies up. A killed process can stay listed in its cgroup for a moment after it left the process table
    /// (the kernel still tearing it down), so removals are retried for up to <paramref name="patience"/>; throws
    /// naming what is still there after that.
    /// </summary>
    public void RemoveAll(TimeSpan patience)
    {
        var deadline = DateTime.UtcNow + patience;
        while (!List().All(Remove) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(100);
        }

        RemoveScope();
    }

    /// <summary>
    /// Removes the scope's directories (not orchestrator/, which other scopes share). Throws while VM cgroups
    /// remain in it: <see cref="Remove"/> them first.
    /// </summary>
    public void RemoveScope()
    {
        var scopeDirs = Mounts.Distinct.Select(ScopeDir).Where(Directory.Exists).ToList();
        foreach (var scopeDir in scopeDirs)
        {
            var children = Directory.GetDirectories(scopeDir);
            if (children.Length > 0)
            {
                throw new HypervisorException(
                    $"cgroup scope {scopeDir} still holds {string.Join(", ", children.Select(System.IO.Path.GetFileName))}: remove its VMs first");
            }
        }

        foreach (var scopeDir in scopeDirs)
        {
            if (!RemoveCgroupDirectory(scopeDir))
            {
                throw new HypervisorException(
                    $"cgroup scope {scopeDir} still holds processes {string.Join(", ", CgroupFiles.ReadPids(System.IO.Path.Combine(scopeDir, "cgroup.procs")))}");
            }
        }
    }

    internal string ScopeDir(string mount) => System.IO.Path.Combine(mount, TopName, Scope);

    // VmId is a Guid and Compact its 32 hex digits: always a safe path component.
    internal string VmDir(string mount, VmId vmId) => System.IO.Path.Combine(ScopeDir(mount), VmPrefix + vmId.Compact);

    /// <summary>Controllers the v2 root offers (its cgroup.controllers).</summary>
    internal IReadOnlySet<string> V2Available() =>
        (CgroupFiles.ReadOrNull(System.IO.Path.Combine(Layout.Root, "cgroup.controllers")) ?? "")
        .Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
        .ToHashSet(StringComparer.Ordinal);

    internal static IReadOnlyList<int> ReadCpus(string path)
    {
        var text = CgroupFiles.Read(path);
        return CpuSet.TryParse(text, out var cpus, out var error)
            ? cpus
            : throw new HypervisorException($"{path} holds no usable cpu list: {error}");
    }

    internal static bool IsSubset(IReadOnlyList<int> cpus, IReadOnlyList<int> of)
    {
        var allowed = of.ToHashSet();
        return cpus.All(allowed.Contains);
    }

    private void PrepareV1(IReadOnlyList<int>? hostCpus, int weight)
    {
        foreach (var mount in Mounts.Distinct)
        {
            CgroupFiles.CreateDirectory(System.IO.Path.Combine(mount, TopName));
        }

        var top = System.IO.Path.Combine(Mounts.Cpuset, TopName);
        InheritCpuset(top, Mounts.Cpuset);
        var available = ReadCpus(System.IO.Path.Combine(top, "cpuset.cpus"));
        var wanted = hostCpus ?? available;
        if (!IsSubset(wanted, available))
        {
            // Checked before the scope exists, so a refused start leaves nothing behind.
            throw new HypervisorException(
                $"host cpuset {CpuSet.Format(wanted)} is not within the CPUs {CpuSet.Format(available)} of {top}");
        }

        foreach (var mount in Mounts.Distinct)
        {
            CgroupFiles.CreateDirectory(ScopeDir(mount));
        }

        var scopeDir = ScopeDir(Mounts.Cpuset);
        CgroupFiles.Write(System.IO.Path.Combine(scopeDir, "cpuset.mems"), CgroupFiles.Read(System.IO.Path.Combine(top, "cpuset.mems")));

        // v1 refuses to shrink a cpuset below a child's: narrow the VMs first (Apply sets them again anyway).
        foreach (var vmDir in Directory.EnumerateDirectories(scopeDir, VmPrefix + "*"))
        {
            var cpusFile = System.IO.Path.Combine(vmDir, "cpuset.cpus");
            if (CpuSet.TryParse(CgroupFiles.ReadOrNull(cpusFile), out var current, out _) && !IsSubset(current, wanted))
            {
                var kept = current.Intersect(wanted).ToList();
                CgroupFiles.Write(cpusFile, CpuSet.Format(kept.Count > 0 ? kept : wanted));
            }
        }

        CgroupFiles.Write(System.IO.Path.Combine(scopeDir, "cpuset.cpus"), CpuSet.Format(wanted));
        CgroupFiles.Write(System.IO.Path.Combine(ScopeDir(Mounts.Cpu), "cpu.shares"), weight);
    }

    private void PrepareV2(IReadOnlyList<int>? hostCpus, int weight)
    {
        var available = V2Available();
        var missing = V2Required.Where(c => !available.Contains(c)).ToList();
        if (missing.Count > 0)
        {
            throw new HypervisorException(
                $"cgroup v2 at {Layout.Root} does not offer the {string.Join(", ", missing)} controller(s) (cgroup.controllers: '{string.Join(' ', available)}')");
        }

        var hasCpuset = available.Contains("cpuset");
        if (hostCpus is not null && !hasCpuset)
        {
            throw new HypervisorException($"a host cpuset needs the cpuset controller, which cgroup v2 at {Layout.Root} does not offer");
        }

        // Each level must hand the controllers down for the next to have them.
        var enable = string.Join(' ', V2Controllers.Where(available.Contains).Select(c => "+" + c));
        var top = System.IO.Path.Combine(Layout.Root, TopName);
        var scopeDir = ScopeDir(Layout.Root);
        CgroupFiles.Write(System.IO.Path.Combine(Layout.Root, "cgroup.subtree_control"), enable);
        CgroupFiles.CreateDirectory(top);
        CgroupFiles.Write(System.IO.Path.Combine(top, "cgroup.subtree_control"), enable);
        CgroupFiles.CreateDirectory(scopeDir);
        CgroupFiles.Write(System.IO.Path.Combine(scopeDir, "cgroup.subtree_control"), enable);

        if (hasCpuset)
        {
            if (hostCpus is not null &&
                CpuSet.TryParse(CgroupFiles.ReadOrNull(System.IO.Path.Combine(top, "cpuset.cpus.effective")), out var parentCpus, out _) &&
                !IsSubset(hostCpus, parentCpus))
            {
                throw new HypervisorException(
                    $"host cpuset {CpuSet.Format(hostCpus)} is not within the CPUs {CpuSet.Format(parentCpus)} of {top}");
            }

            // v2: an empty cpuset.cpus inherits the parent's.
            CgroupFiles.Write(System.IO.Path.Combine(scopeDir, "cpuset.cpus"), hostCpus is null ? "" : CpuSet.Format(hostCpus));
        }

        CgroupFiles.Write(System.IO.Path.Combine(scopeDir, "cpu.weight"), CgroupLimits.ToCpuWeightV2(weight));
    }

    private static void InheritCpuset(string dir, string parent)
    {
        foreach (var file in new[] { "cpuset.cpus", "cpuset.mems" })
        {
            var path = System.IO.Path.Combine(dir, file);
            if (string.IsNullOrEmpty(CgroupFiles.ReadOrNull(path)))
            {
                CgroupFiles.Write(path, CgroupFiles.Read(System.IO.Path.Combine(parent, file)));
            }
        }
    }

    /// <summary>rmdir of a cgroup; false while it holds processes.</summary>
    private static bool RemoveCgroupDirectory(string dir)
    {
        switch (CgroupFiles.RemoveDirectory(dir))
        {
            case CgroupFiles.RemoveResult.Removed:
                return true;
            case CgroupFiles.RemoveResult.Busy:
                return false;
            default:
                // cgroupfs says ENOTEMPTY only for child cgroups; a plain directory standing in for one (tests)
                // says it for its files.
                if (Directory.GetDirectories(dir).Length > 0)
                {
                    throw new HypervisorException(
                        $"cannot remove cgroup {dir}: it holds cgroups {string.Join(", ", Directory.GetDirectories(dir).Select(System.IO.Path.GetFileName))}");
                }

                Directory.Delete(dir, recursive: true);
                return true;
        }
    }
}

/// <summary>One VM's cgroup (a directory in each controller).</summary>
public sealed class VmCgroup
{
    private readonly VmCgroups _owner;

    internal VmCgroup(VmCgroups owner, VmId vmId)
    {
        _owner = owner;
        VmId = vmId;
        Path = owner.VmDir(owner.Mounts.Cpu, vmId);
    }

    public VmId VmId { get; }

    /// <summary>The cpu controller's directory (for messages and tests).</summary>
    public string Path { get; }

    /// <summary>
    /// Moves a process, all its threads, into the cgroup in every controller. On v1 the memory it has already
    /// touched stays charged where it was: add a VM's process before its guest memory is touched.
    /// </summary>
    public void AddProcess(int pid)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pid);
        var m = _owner.Mounts;

        // cpuset first: on v1 it is the join most likely refused (a cpuset without CPUs), before any other moved.
        IEnumerable<string> mounts = _owner.IsV1 ? new[] { m.Cpuset, m.Memory, m.Cpu, m.Cpuacct }.Distinct(StringComparer.Ordinal) : [m.Cpu];
        foreach (var mount in mounts)
        {
            CgroupFiles.Write(System.IO.Path.Combine(Dir(mount), "cgroup.procs"), pid);
        }
    }

    /// <summary>Writes every limit (whether or not it changed), so it holds after a node restart too.</summary>
    public void Apply(CgroupLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var cpus = limits.Validate();
        if (_owner.IsV1)
        {
            ApplyV1(limits, cpus);
        }
        else
        {
            ApplyV2(limits, cpus);
        }
    }

    /// <summary>CPU time used by everything that ran in the cgroup; null when it is gone.</summary>
    public TimeSpan? CpuUsage()
    {
        if (_owner.IsV1)
        {
            var path = System.IO.Path.Combine(Dir(_owner.Mounts.Cpuacct), "cpuacct.usage");
            var text = CgroupFiles.ReadOrNull(path);
            if (text is null)
            {
                return null;
            }

            return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var nanoseconds)
                ? TimeSpan.FromTicks(nanoseconds / 100)
                : throw new HypervisorException($"{path} holds '{text}', not nanoseconds");
        }

        var stat = System.IO.Path.Combine(Path, "cpu.stat");
        var lines = CgroupFiles.ReadOrNull(stat);
        if (lines is null)
        {
            return null;
        }

        foreach (var line in lines.Split('\n'))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields is ["usage_usec", var value])
            {
                return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var microseconds)
                    ? TimeSpan.FromTicks(microseconds * 10)
                    : throw new HypervisorException($"{stat} has usage_usec '{value}', not microseconds");
            }
        }

        throw new HypervisorException($"{stat} has no usage_usec line");
    }

    /// <summary>The processes (thread group ids) in the cgroup; empty when it is gone.</summary>
    public IReadOnlyList<int> Processes() => CgroupFiles.ReadPids(System.IO.Path.Combine(Path, "cgroup.procs"));

    public override string ToString() => Path;

    private string Dir(string mount) => _owner.VmDir(mount, VmId);

    private void ApplyV1(CgroupLimits limits, IReadOnlyList<int>? cpus)
    {
        var m = _owner.Mounts;
        var cpu = Dir(m.Cpu);
        CgroupFiles.Write(System.IO.Path.Combine(cpu, "cpu.shares"), limits.CpuWeight);
        CgroupFiles.Write(System.IO.Path.Combine(cpu, "cpu.cfs_period_us"), CgroupLimits.CpuPeriodMicroseconds);
        CgroupFiles.Write(System.IO.Path.Combine(cpu, "cpu.cfs_quota_us"),
            limits.CpuQuotaMillicores is { } millicores ? CgroupLimits.ToQuotaMicroseconds(millicores) : -1);

        var memory = Dir(m.Memory);
        CgroupFiles.Write(System.IO.Path.Combine(memory, "memory.limit_in_bytes"), limits.MemoryLimitBytes ?? -1);
        CgroupFiles.Write(System.IO.Path.Combine(memory, "memory.soft_limit_in_bytes"), limits.MemoryReservationBytes ?? -1);

        var scope = _owner.ScopeDir(m.Cpuset);
        var allowed = VmCgroups.ReadCpus(System.IO.Path.Combine(scope, "cpuset.cpus"));
        var wanted = cpus ?? allowed;
        if (!VmCgroups.IsSubset(wanted, allowed))
        {
            throw new HypervisorException(
                $"VM {VmId} cpuset {CpuSet.Format(wanted)} is not within this host's CPUs {CpuSet.Format(allowed)} ({scope}/cpuset.cpus)");
        }

        var cpuset = Dir(m.Cpuset);
        CgroupFiles.Write(System.IO.Path.Combine(cpuset, "cpuset.mems"), CgroupFiles.Read(System.IO.Path.Combine(scope, "cpuset.mems")));
        CgroupFiles.Write(System.IO.Path.Combine(cpuset, "cpuset.cpus"), CpuSet.Format(wanted));
    }

    private void ApplyV2(CgroupLimits limits, IReadOnlyList<int>? cpus)
    {
        var dir = Path;
        var period = CgroupLimits.CpuPeriodMicroseconds.ToString(CultureInfo.InvariantCulture);
        CgroupFiles.Write(System.IO.Path.Combine(dir, "cpu.weight"), CgroupLimits.ToCpuWeightV2(limits.CpuWeight));
        CgroupFiles.Write(System.IO.Path.Combine(dir, "cpu.max"), limits.CpuQuotaMillicores is { } millicores
            ? $"{CgroupLimits.ToQuotaMicroseconds(millicores).ToString(CultureInfo.InvariantCulture)} {period}"
            : $"max {period}");
        CgroupFiles.Write(System.IO.Path.Combine(dir, "memory.max"),
            limits.MemoryLimitBytes is { } limit ? limit.ToString(CultureInfo.InvariantCulture) : "max");
        CgroupFiles.Write(System.IO.Path.Combine(dir, "memory.low"), limits.MemoryReservationBytes ?? 0);

        if (_owner.V2Available().Contains("cpuset"))
        {
            // Empty inherits the scope's (the host's) CPUs.
            CgroupFiles.Write(System.IO.Path.Combine(dir, "cpuset.cpus"), cpus is null ? "" : CpuSet.Format(cpus));
        }
        else if (cpus is not null)
        {
            throw new HypervisorException($"VM {VmId} asks for cpuset {CpuSet.Format(cpus)}, but cgroup v2 at {_owner.Layout.Root} has no cpuset controller");
        }
    }
}
