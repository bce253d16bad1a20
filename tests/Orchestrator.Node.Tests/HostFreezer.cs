namespace Orchestrator.Node.Tests;

/// <summary>
/// One host's processes in a cgroup v1 freezer group, frozen and thawed together as a whole machine would be (a
/// hypervisor pause, a stuck kernel): the node joins the group before it starts, so its fence guard and every guest
/// the guard forks are in it too (children inherit their parent's cgroup). The node's VM cgroups are in other
/// hierarchies (cpu, cpuset, memory), so they do not take the guests out of this one.
/// </summary>
public sealed class HostFreezer : IDisposable
{
    private const string Hierarchy = "/sys/fs/cgroup/freezer";

    public HostFreezer(string name)
    {
        if (!File.Exists(Path.Combine(Hierarchy, "cgroup.procs")))
        {
            throw new InvalidOperationException($"freezing a whole host needs the cgroup v1 freezer mounted at {Hierarchy}");
        }

        Group = Path.Combine(Hierarchy, name);
        Directory.CreateDirectory(Group);
    }

    public string Group { get; }

    /// <summary>Prefixed to a node's command line: moves the shell into the group, then execs the node (same pid).</summary>
    public IReadOnlyList<string> Launcher => ["sh", "-c", "echo $$ >\"$0/cgroup.procs\" && exec \"$@\"", Group];

    public IReadOnlyList<int> Pids =>
        File.ReadAllLines(Path.Combine(Group, "cgroup.procs")).Select(line => int.Parse(line, System.Globalization.CultureInfo.InvariantCulture)).ToList();

    /// <summary>Freezes every process of the group and returns once the kernel reports them all frozen.</summary>
    public async Task FreezeAsync()
    {
        await File.WriteAllTextAsync(State, "FROZEN");
        while ((await File.ReadAllTextAsync(State)).Trim() != "FROZEN")
        {
            await Task.Delay(10);
        }
    }

    public void Thaw() => File.WriteAllText(State, "THAWED");

    private string State => Path.Combine(Group, "freezer.state");

    /// <summary>Thaws (a frozen process cannot die) and removes the group once its processes are gone.</summary>
    public void Dispose()
    {
        Thaw();
        for (var attempt = 0; attempt < 100 && Directory.Exists(Group); attempt++)
        {
            try
            {
                Directory.Delete(Group);
            }
            catch (IOException)
            {
                Thread.Sleep(100); // processes still in it
            }
        }
    }
}
