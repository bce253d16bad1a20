// VM cgroups against this machine's real hierarchy (v1 or v2), and v2 against a fake tree in a temp dir.
using System.Diagnostics;
using Orchestrator.Domain;
using Orchestrator.Hypervisor.Cgroups;

using Orchestrator.Domain.Vms;

namespace Orchestrator.Hypervisor.Tests;

public sealed class CgroupTests
{
    private const long MiB = 1024 * 1024;

    [CgroupFact]
    public void Prepare_scope_and_open_create_the_vm_cgroup_in_every_controller_with_the_parents_cpuset()
    {
        using var scope = new TestScope();
        var vm = scope.Open();
        var cgroups = scope.Cgroups;

        foreach (var mount in cgroups.Mounts.Distinct)
        {
            Assert.True(Directory.Exists(cgroups.ScopeDir(mount)), $"{cgroups.ScopeDir(mount)} was not created");
            Assert.True(Directory.Exists(cgroups.VmDir(mount, vm.VmId)), $"{cgroups.VmDir(mount, vm.VmId)} was not created");
        }

        Assert.Equal(cgroups.VmDir(cgroups.Mounts.Cpu, vm.VmId), vm.Path);
        if (cgroups.Layout.Version == CgroupVersion.V1)
        {
            var parent = cgroups.Mounts.Cpuset;
            var vmDir = cgroups.VmDir(parent, vm.VmId);
            Assert.Equal(Read(parent, "cpuset.cpus"), Read(vmDir, "cpuset.cpus"));
            Assert.Equal(Read(parent, "cpuset.mems"), Read(vmDir, "cpuset.mems"));
        }

        // Idempotent, as after a node restart.
        cgroups.PrepareScope(null, null);
        Assert.Equal(vm.Path, cgroups.Open(vm.VmId).Path);
    }

    [CgroupFact]
    public void Apply_writes_every_limit_and_a_second_apply_resets_what_it_leaves_out()
    {
        using var scope = new TestScope();
        var vm = scope.Open();
        var cgroups = scope.Cgroups;
        var m = cgroups.Mounts;
        var cpu = cgroups.VmDir(m.Cpu, vm.VmId);
        var memory = cgroups.VmDir(m.Memory, vm.VmId);
        var cpuset = cgroups.VmDir(m.Cpuset, vm.VmId);
        var lastCpu = CpuSet.Parse(Read(cgroups.ScopeDir(m.Cpuset), cgroups.Layout.Version == CgroupVersion.V1 ? "cpuset.cpus" : "cpuset.cpus.effective"))[^1];

        vm.Apply(new CgroupLimits(2048, 1500, 256 * MiB, 128 * MiB, lastCpu.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        if (cgroups.Layout.Version == CgroupVersion.V1)
        {
            Assert.Equal("2048", Read(cpu, "cpu.shares"));
            Assert.Equal("100000", Read(cpu, "cpu.cfs_period_us"));
            Assert.Equal("150000", Read(cpu, "cpu.cfs_quota_us"));
            Assert.Equal((256 * MiB).ToString(), Read(memory, "memory.limit_in_bytes"));
            Assert.Equal((128 * MiB).ToString(), Read(memory, "memory.soft_limit_in_bytes"));
        }
        else
        {
            Assert.Equal("79", Read(cpu, "cpu.weight"));
            Assert.Equal("150000 100000", Read(cpu, "cpu.max"));
            Assert.Equal((256 * MiB).ToString(), Read(memory, "memory.max"));
            Assert.Equal((128 * MiB).ToString(), Read(memory, "memory.low"));
        }

        Assert.Equal([lastCpu], CpuSet.Parse(Read(cpuset, "cpuset.cpus")));

        vm.Apply(new CgroupLimits(1024, null, null, null, null));

        if (cgroups.Layout.Version == CgroupVersion.V1)
        {
            Assert.Equal("1024", Read(cpu, "cpu.shares"));
            Assert.Equal("-1", Read(cpu, "cpu.cfs_quota_us"));
            Assert.Equal(Read(m.Memory, "memory.limit_in_bytes"), Read(memory, "memory.limit_in_bytes"));
            Assert.Equal(Read(m.Memory, "memory.soft_limit_in_bytes"), Read(memory, "memory.soft_limit_in_bytes"));
            Assert.Equal(Read(cgroups.ScopeDir(m.Cpuset), "cpuset.cpus"), Read(cpuset, "cpuset.cpus"));
        }
        else
        {
            Assert.Equal("39", Read(cpu, "cpu.weight"));
            Assert.Equal("max 100000", Read(cpu, "cpu.max"));
            Assert.Equal("max", Read(memory, "memory.max"));
            Assert.Equal("0", Read(memory, "memory.low"));
        }
    }

    [CgroupFact]
    public void A_host_cpuset_confines_the_scope_and_a_vm_cpuset_outside_it_is_refused()
    {
        using var scope = new TestScope();
        var cgroups = scope.Cgroups;
        cgroups.PrepareScope("0", 512);
        var vm = cgroups.Open(scope.NewVm());

        Assert.Equal("0", Read(cgroups.ScopeDir(cgroups.Mounts.Cpuset), "cpuset.cpus"));
        Assert.Equal(
            cgroups.Layout.Version == CgroupVersion.V1 ? "512" : CgroupLimits.ToCpuWeightV2(512).ToString(),
            Read(cgroups.ScopeDir(cgroups.Mounts.Cpu), cgroups.Layout.Version == CgroupVersion.V1 ? "cpu.shares" : "cpu.weight"));

        if (cgroups.Layout.Version == CgroupVersion.V1)
        {
            Assert.Equal("0", Read(cgroups.VmDir(cgroups.Mounts.Cpuset, vm.VmId), "cpuset.cpus"));
            var error = Assert.Throws<HypervisorException>(() => vm.Apply(new CgroupLimits(1024, null, null, null, "0-4095")));
            Assert.Contains("0-4095", error.Message);

            // Widening the host back is allowed with a narrower VM inside.
            cgroups.PrepareScope(null, null);
            Assert.Equal(Read(cgroups.Mounts.Cpuset, "cpuset.cpus"), Read(cgroups.ScopeDir(cgroups.Mounts.Cpuset), "cpuset.cpus"));
        }
    }

    [CgroupFact]
    public void Add_process_moves_a_process_into_every_controller_and_processes_lists_it()
    {
        using var scope = new TestScope();
        var vm = scope.Open();
        var sleep = scope.Start("sleep", "30");

        vm.AddProcess(sleep.Id);

        Assert.Equal([sleep.Id], vm.Processes());
        foreach (var mount in scope.Cgroups.Mounts.Distinct)
        {
            Assert.Contains(sleep.Id.ToString(), File.ReadAllLines(Path.Combine(scope.Cgroups.VmDir(mount, vm.VmId), "cgroup.procs")));
        }

        var error = Assert.Throws<HypervisorException>(() => vm.AddProcess(int.MaxValue));
        Assert.Contains("cgroup.procs", error.Message);
    }

    [CgroupFact]
    public void Remove_refuses_while_a_process_lives_and_removes_every_directory_once_it_is_reaped()
    {
        using var scope = new TestScope();
        var vm = scope.Open();
        var sleep = scope.Start("sleep", "30");
        vm.AddProcess(sleep.Id);

        Assert.False(scope.Cgroups.Remove(vm.VmId));
        Assert.True(Directory.Exists(vm.Path));

        sleep.Kill();
        sleep.WaitForExit();

        Assert.True(Eventually(() => scope.Cgroups.Remove(vm.VmId)), "the cgroup of a reaped process could not be removed");
        foreach (var mount in scope.Cgroups.Mounts.Distinct)
        {
            Assert.False(Directory.Exists(scope.Cgroups.VmDir(mount, vm.VmId)));
        }

        Assert.True(scope.Cgroups.Remove(vm.VmId)); // already gone
        Assert.Null(vm.CpuUsage());
        Assert.Empty(vm.Processes());
    }

    [CgroupFact]
    public void List_finds_the_opened_vms_and_only_those()
    {
        using var scope = new TestScope();
        Assert.Empty(scope.Cgroups.List());
        var first = scope.Open();
        var second = scope.Open();

        Assert.Equal(new[] { first.VmId, second.VmId }.OrderBy(id => id.Compact), scope.Cgroups.List());

        Assert.True(scope.Cgroups.Remove(first.VmId));
        Assert.Equal([second.VmId], scope.Cgroups.List());
    }

    [CgroupFact]
    public void Cpu_usage_accumulates_while_a_process_burns()
    {
        using var scope = new TestScope();
        var vm = scope.Open();
        Assert.Equal(TimeSpan.Zero, vm.CpuUsage());
        var burn = scope.Start("sh", "-c", "while :; do :; done");
        vm.AddProcess(burn.Id);

        // Other builds may share the CPUs: wait for the CPU time, up to a bound, rather than for wall time.
        var threshold = TimeSpan.FromSeconds(0.3);
        Eventually(() => vm.CpuUsage() >= threshold, TimeSpan.FromSeconds(5));

        Assert.True(vm.CpuUsage() >= threshold, $"only {vm.CpuUsage()} of CPU time accumulated in {vm.Path}");
    }

    [CgroupFact]
    public void A_quota_of_200_millicores_keeps_a_busy_loop_to_a_fifth_of_a_cpu()
    {
        using var scope = new TestScope();
        var vm = scope.Open();
        vm.Apply(new CgroupLimits(1024, 200, null, null, null));
        var burn = scope.Start("sh", "-c", "while :; do :; done");
        var before = vm.CpuUsage()!.Value;
        var periodsBefore = CfsPeriods(vm);
        vm.AddProcess(burn.Id);

        Thread.Sleep(TimeSpan.FromSeconds(2));
        var used = vm.CpuUsage()!.Value - before;
        var periods = CfsPeriods(vm) - periodsBefore;

        // The kernel's own count of 100 ms quota periods bounds the CPU time: 20 ms per period (+1 period of slack).
        var allowed = TimeSpan.FromMilliseconds(20 * (periods + 1) * 1.05);
        Assert.True(used > TimeSpan.Zero, "the busy loop got no CPU at all");
        Assert.True(periods > 0, "the quota never started a CFS period");
        Assert.True(used <= allowed, $"the busy loop used {used} of CPU over {periods} CFS periods; a 200m quota allows about {allowed}");
    }

    /// <summary>nr_periods from the VM's cpu.stat: how many 100 ms CFS periods its quota has been enforced over.</summary>
    private static long CfsPeriods(VmCgroup vm) =>
        File.ReadLines(Path.Combine(vm.Path, "cpu.stat"))
            .Select(line => line.Split(' '))
            .Where(f => f[0] == "nr_periods")
            .Select(f => long.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture))
            .Single();

    [Fact]
    public void Thread_affinity_round_trips_on_a_sleeping_process()
    {
        using var sleep = StartProcess("sleep", "30");
        try
        {
            var allowed = ThreadAffinity.Get(sleep.Id);
            Assert.NotEmpty(allowed);

            ThreadAffinity.Set(sleep.Id, [allowed[^1]]);
            Assert.Equal([allowed[^1]], ThreadAffinity.Get(sleep.Id));

            ThreadAffinity.Set(sleep.Id, allowed);
            Assert.Equal(allowed, ThreadAffinity.Get(sleep.Id));
        }
        finally
        {
            KillAndReap(sleep);
        }
    }

    [Fact]
    public void Thread_affinity_to_a_cpu_the_machine_lacks_names_thread_cpus_and_errno()
    {
        using var sleep = StartProcess("sleep", "30");
        try
        {
            var error = Assert.Throws<HypervisorException>(() => ThreadAffinity.Set(sleep.Id, [4000]));
            Assert.Contains($"thread {sleep.Id}", error.Message);
            Assert.Contains("4000", error.Message);
            Assert.Contains("errno 22", error.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => ThreadAffinity.Set(sleep.Id, [4096]));
        }
        finally
        {
            KillAndReap(sleep);
        }
    }

    [Theory]
    [InlineData("0", new[] { 0 }, "0")]
    [InlineData("0-3,5", new[] { 0, 1, 2, 3, 5 }, "0-3,5")]
    [InlineData(" 5,0-2,1 \n", new[] { 0, 1, 2, 5 }, "0-2,5")]
    [InlineData("7,6,4095", new[] { 6, 7, 4095 }, "6-7,4095")]
    [InlineData("2-2", new[] { 2 }, "2")]
    public void Cpu_lists_parse_and_format_in_their_shortest_form(string text, int[] cpus, string formatted)
    {
        Assert.Equal(cpus, CpuSet.Parse(text));
        Assert.Equal(formatted, CpuSet.Format(cpus));
    }

    [Theory]
    [InlineData(null, "empty")]
    [InlineData("", "empty")]
    [InlineData("1,,2", "empty item")]
    [InlineData("3-1", "backwards")]
    [InlineData("0-", "missing end")]
    [InlineData("x", "'x'")]
    [InlineData("-1", "missing end")]
    [InlineData("0-4096", "4096")]
    [InlineData("0:2", "'0:2'")]
    public void Cpu_list_errors_say_what_is_wrong(string? text, string mentions)
    {
        Assert.False(CpuSet.TryParse(text, out var cpus, out var error));
        Assert.Empty(cpus);
        Assert.Contains(mentions, error);
        if (text is not null)
        {
            Assert.Throws<FormatException>(() => CpuSet.Parse(text));
        }
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(1024, 39)]
    [InlineData(2048, 79)]
    [InlineData(262144, 10000)]
    public void Cpu_shares_convert_to_cgroup_v2_weights_as_systemd_does(int shares, int weight) =>
        Assert.Equal(weight, CgroupLimits.ToCpuWeightV2(shares));

    [Fact]
    public void Scopes_are_host_ids_and_nothing_that_could_escape_the_directory()
    {
        var layout = new CgroupLayout(CgroupVersion.V2, Path.GetTempPath(), null);
        foreach (var bad in new[] { "", ".", "..", "../x", "a/b", "-x", "_x", "a b", new string('a', 65) })
        {
            Assert.Throws<ArgumentException>(() => new VmCgroups(layout, bad));
        }

        Assert.Equal("node-1.eu_2", new VmCgroups(layout, "node-1.eu_2").Scope);
        Assert.Throws<HypervisorException>(() => new VmCgroups(new CgroupLayout(CgroupVersion.None, "/nowhere", "test"), "node"));
    }

    [Fact]
    public void Limits_out_of_range_are_refused_before_anything_is_written()
    {
        using var tree = new FakeV2Tree();
        tree.Cgroups.PrepareScope(null, null);
        var vm = tree.Cgroups.Open(VmId.New());

        Assert.Throws<ArgumentOutOfRangeException>(() => tree.Cgroups.PrepareScope("0", 1));
        Assert.Throws<ArgumentException>(() => tree.Cgroups.PrepareScope("0-", null));
        Assert.Throws<ArgumentOutOfRangeException>(() => vm.Apply(new CgroupLimits(1, null, null, null, null)));
        Assert.Throws<ArgumentOutOfRangeException>(() => vm.Apply(new CgroupLimits(1024, 5, null, null, null)));
        Assert.Throws<ArgumentOutOfRangeException>(() => vm.Apply(new CgroupLimits(1024, null, 0, null, null)));
        Assert.Contains("backwards", Assert.Throws<ArgumentException>(() => vm.Apply(new CgroupLimits(1024, null, null, null, "3-1"))).Message);
        Assert.False(File.Exists(Path.Combine(vm.Path, "cpu.weight")));
    }

    [Fact]
    public void Detect_says_why_a_directory_holds_no_hierarchy()
    {
        var dir = Directory.CreateTempSubdirectory("cgroup-none-");
        try
        {
            var layout = CgroupLayout.Detect(dir.FullName);
            Assert.Equal(CgroupVersion.None, layout.Version);
            Assert.Contains("cgroup.controllers", layout.Problem);

            Directory.CreateDirectory(Path.Combine(dir.FullName, "cpu,cpuacct"));
            File.WriteAllText(Path.Combine(dir.FullName, "cpu,cpuacct", "cpu.shares"), "1024");
            File.WriteAllText(Path.Combine(dir.FullName, "cpu,cpuacct", "cpuacct.usage"), "0");
            layout = CgroupLayout.Detect(dir.FullName);
            Assert.Equal(CgroupVersion.None, layout.Version);
            Assert.Contains("cpuset, memory", layout.Problem);

            foreach (var (controller, file) in new[] { ("cpuset", "cpuset.cpus"), ("memory", "memory.limit_in_bytes") })
            {
                Directory.CreateDirectory(Path.Combine(dir.FullName, controller));
                File.WriteAllText(Path.Combine(dir.FullName, controller, file), "");
            }

            layout = CgroupLayout.Detect(dir.FullName);
            Assert.Equal(CgroupVersion.V1, layout.Version);
            var cgroups = new VmCgroups(layout, "comounted");
            Assert.Equal(cgroups.Mounts.Cpu, cgroups.Mounts.Cpuacct);
            Assert.Equal(3, cgroups.Mounts.Distinct.Count);
            Assert.Equal(CgroupVersion.None, CgroupLayout.Detect(Path.Combine(dir.FullName, "missing")).Version);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void On_cgroup_v2_controllers_are_handed_down_and_limits_written_in_v2_units()
    {
        using var tree = new FakeV2Tree();
        var cgroups = tree.Cgroups;
        Assert.Equal(CgroupVersion.V2, cgroups.Layout.Version);

        cgroups.PrepareScope("0-1", 2048);

        var top = Path.Combine(tree.Root, "orchestrator");
        var scopeDir = Path.Combine(top, "host-a");
        Assert.Equal("+cpu +cpuset +memory", Read(tree.Root, "cgroup.subtree_control"));
        Assert.Equal("+cpu +cpuset +memory", Read(top, "cgroup.subtree_control"));
        Assert.Equal("+cpu +cpuset +memory", Read(scopeDir, "cgroup.subtree_control"));
        Assert.Equal("0-1", Read(scopeDir, "cpuset.cpus"));
        Assert.Equal("79", Read(scopeDir, "cpu.weight"));

        var vm = cgroups.Open(VmId.New());
        Assert.Equal(Path.Combine(scopeDir, "vm-" + vm.VmId.Compact), vm.Path);
        vm.Apply(new CgroupLimits(1024, 200, 256 * MiB, 128 * MiB, "1"));
        Assert.Equal("39", Read(vm.Path, "cpu.weight"));
        Assert.Equal("20000 100000", Read(vm.Path, "cpu.max"));
        Assert.Equal("268435456", Read(vm.Path, "memory.max"));
        Assert.Equal("134217728", Read(vm.Path, "memory.low"));
        Assert.Equal("1", Read(vm.Path, "cpuset.cpus"));

        vm.Apply(new CgroupLimits(2, null, null, null, null));
        Assert.Equal("1", Read(vm.Path, "cpu.weight"));
        Assert.Equal("max 100000", Read(vm.Path, "cpu.max"));
        Assert.Equal("max", Read(vm.Path, "memory.max"));
        Assert.Equal("0", Read(vm.Path, "memory.low"));
        Assert.Equal("", Read(vm.Path, "cpuset.cpus"));

        File.WriteAllText(Path.Combine(vm.Path, "cpu.stat"), "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n");
        Assert.Equal(TimeSpan.FromSeconds(1.5), vm.CpuUsage());

        vm.AddProcess(4242);
        Assert.Equal([4242], vm.Processes());
        Assert.Equal([vm.VmId], cgroups.List());
        Assert.False(cgroups.Remove(vm.VmId));
        Assert.Throws<HypervisorException>(cgroups.RemoveScope);

        File.WriteAllText(Path.Combine(vm.Path, "cgroup.procs"), "");
        Assert.True(cgroups.Remove(vm.VmId));
        Assert.False(Directory.Exists(vm.Path));
        Assert.Empty(cgroups.List());
        cgroups.RemoveScope();
        Assert.False(Directory.Exists(scopeDir));
    }

    [Fact]
    public void On_cgroup_v2_without_the_memory_controller_prepare_scope_says_so()
    {
        using var tree = new FakeV2Tree("cpu cpuset io");
        var error = Assert.Throws<HypervisorException>(() => tree.Cgroups.PrepareScope(null, null));
        Assert.Contains("memory", error.Message);
        Assert.Throws<HypervisorException>(() => tree.Cgroups.Open(VmId.New()));
    }

    private static string Read(string dir, string file) => File.ReadAllText(Path.Combine(dir, file)).Trim();

    private static bool Eventually(Func<bool> condition, TimeSpan? within = null)
    {
        // A deadline for polling, as NodeProcess.Eventually keeps: nothing is asserted about how long it took.
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(2));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            Thread.Sleep(20);
        }

        return true;
    }

    private static Process StartProcess(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        return Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
    }

    private static void KillAndReap(Process process)
    {
        try
        {
            process.Kill();
        }
        catch (InvalidOperationException)
        {
            // already exited
        }

        process.WaitForExit();
    }

    /// <summary>A unique scope on the real hierarchy; disposing kills its processes and removes every cgroup.</summary>
    private sealed class TestScope : IDisposable
    {
        private readonly List<Process> _processes = [];

        public TestScope()
        {
            Cgroups = new VmCgroups(CgroupLayout.Detect(), "test-" + Guid.NewGuid().ToString("N")[..12]);
            Cgroups.PrepareScope(null, null);
        }

        public VmCgroups Cgroups { get; }

        public VmId NewVm() => VmId.New();

        public VmCgroup Open() => Cgroups.Open(NewVm());

        public Process Start(string file, params string[] args)
        {
            var process = StartProcess(file, args);
            _processes.Add(process);
            return process;
        }

        public void Dispose()
        {
            foreach (var process in _processes)
            {
                KillAndReap(process);
                process.Dispose();
            }

            foreach (var vm in Cgroups.List())
            {
                Assert.True(Eventually(() => Cgroups.Remove(vm)), $"cgroup of VM {vm} in {Cgroups.Scope} still holds processes");
            }

            Cgroups.RemoveScope();
        }
    }

    /// <summary>A temp dir laid out as a cgroup v2 root, as far as plain files can stand in for cgroupfs.</summary>
    private sealed class FakeV2Tree : IDisposable
    {
        public FakeV2Tree(string controllers = "cpu cpuset memory")
        {
            Root = Directory.CreateTempSubdirectory("cgroup-v2-").FullName;
            File.WriteAllText(Path.Combine(Root, "cgroup.controllers"), controllers + "\n");
            File.WriteAllText(Path.Combine(Root, "cgroup.subtree_control"), "");
            File.WriteAllText(Path.Combine(Root, "cgroup.procs"), "1\n");
            Cgroups = new VmCgroups(CgroupLayout.Detect(Root), "host-a");
        }

        public string Root { get; }

        public VmCgroups Cgroups { get; }

        public void Dispose() => Directory.Delete(Root, recursive: true);
    }
}

/// <summary>A test on the machine's real cgroups: needs root and a v1 or v2 hierarchy at /sys/fs/cgroup.</summary>
public sealed class CgroupFactAttribute : FactAttribute
{
    public CgroupFactAttribute()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Skip = "creating cgroups needs root";
        }
        else if (CgroupLayout.Detect() is { Version: CgroupVersion.None } layout)
        {
            Skip = $"no cgroup hierarchy: {layout.Problem}";
        }
    }
}
