// Finds the cgroup hierarchy VMs are confined in: unified v2, or v1 with one mount per controller.
namespace Orchestrator.Hypervisor.Cgroups;

public enum CgroupVersion
{
    None,
    V1,
    V2,
}

/// <summary>
/// Where the hierarchy is. <see cref="Problem"/> says why there is none when <see cref="Version"/> is
/// <see cref="CgroupVersion.None"/>.
/// </summary>
public sealed record CgroupLayout(CgroupVersion Version, string Root, string? Problem)
{
    public const string DefaultRoot = "/sys/fs/cgroup";

    /// <summary>
    /// V2 when &lt;root&gt;/cgroup.controllers exists (a hybrid system's v2 mount at &lt;root&gt;/unified is not
    /// looked at); else V1 when the cpu, cpuacct, cpuset and memory controllers are mounted under root
    /// (cpu and cpuacct either apart or comounted as cpu,cpuacct); else None.
    /// </summary>
    public static CgroupLayout Detect(string root = DefaultRoot)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (!Directory.Exists(root))
        {
            return new CgroupLayout(CgroupVersion.None, root, $"{root} does not exist (is cgroupfs mounted?)");
        }

        if (File.Exists(Path.Combine(root, "cgroup.controllers")))
        {
            return new CgroupLayout(CgroupVersion.V2, root, null);
        }

        var mounts = CgroupMounts.FindV1(root, out var missing);
        if (mounts is null)
        {
            var problem = missing.Contains("cpu")
                ? $"{root} has neither cgroup.controllers (cgroup v2) nor cpu/cpu.shares (cgroup v1)"
                : $"cgroup v1 at {root} lacks the controller(s) {string.Join(", ", missing)}";
            return new CgroupLayout(CgroupVersion.None, root, problem);
        }

        return new CgroupLayout(CgroupVersion.V1, root, null);
    }
}

/// <summary>The directory each controller's hierarchy starts at; all the same directory on v2.</summary>
internal sealed record CgroupMounts(string Cpu, string Cpuacct, string Cpuset, string Memory)
{
    /// <summary>Each hierarchy once (cpu and cpuacct are one when comounted).</summary>
    public IReadOnlyList<string> Distinct { get; } = new[] { Cpu, Cpuacct, Cpuset, Memory }.Distinct(StringComparer.Ordinal).ToArray();

    public static CgroupMounts For(CgroupLayout layout) => layout.Version switch
    {
        CgroupVersion.V2 => new CgroupMounts(layout.Root, layout.Root, layout.Root, layout.Root),
        CgroupVersion.V1 => FindV1(layout.Root, out var missing)
            ?? throw new HypervisorException($"cgroup v1 at {layout.Root} lacks the controller(s) {string.Join(", ", missing)}"),
        _ => throw new HypervisorException($"no usable cgroup hierarchy at {layout.Root}: {layout.Problem}"),
    };

    public static CgroupMounts? FindV1(string root, out IReadOnlyList<string> missing)
    {
        // Distributions mount cpu and cpuacct together as "cpu,cpuacct", usually with cpu and cpuacct
        // symlinks to it; some (and this project's CI) mount them apart.
        var cpu = First(root, "cpu.shares", "cpu", "cpu,cpuacct", "cpuacct,cpu");
        var cpuacct = First(root, "cpuacct.usage", "cpuacct", "cpu,cpuacct", "cpuacct,cpu", "cpu");
        var cpuset = First(root, "cpuset.cpus", "cpuset");
        var memory = First(root, "memory.limit_in_bytes", "memory");
        var absent = new List<string>();
        if (cpu is null)
        {
            absent.Add("cpu");
        }

        if (cpuacct is null)
        {
            absent.Add("cpuacct");
        }

        if (cpuset is null)
        {
            absent.Add("cpuset");
        }

        if (memory is null)
        {
            absent.Add("memory");
        }

        missing = absent;
        return cpu is null || cpuacct is null || cpuset is null || memory is null
            ? null
            : new CgroupMounts(cpu, cpuacct, cpuset, memory);
    }

    private static string? First(string root, string marker, params string[] names)
    {
        foreach (var name in names)
        {
            var dir = Path.Combine(root, name);
            if (File.Exists(Path.Combine(dir, marker)))
            {
                return dir;
            }
        }

        return null;
    }
}
