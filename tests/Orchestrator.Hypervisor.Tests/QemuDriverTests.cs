// The QEMU driver against real QEMU (TCG here) booting the project's demo image. One collection: two cores
// cannot boot many guests at once, and one booted guest is shared by the tests that only look at it.
using Orchestrator.Domain;
using Orchestrator.Hypervisor.Accel;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Tests;

[CollectionDefinition(Name)]
public sealed class QemuCollection : ICollectionFixture<QemuFixture>
{
    public const string Name = "qemu";
}

/// <summary>A run directory with a driver that heartbeats, and one booted guest shared by read-only tests.</summary>
public sealed class QemuFixture : IAsyncLifetime
{
    public const string SharedName = "shared-guest";
    public const int SharedVcpus = 2;

    private readonly TempDir _dir = new();
    private Timer? _heartbeat;

    public string RunDirectory => _dir.Path;
    public QemuDriver Driver { get; private set; } = null!;
    public GuestImage Image { get; private set; } = null!;
    public IVmHandle Shared { get; private set; } = null!;
    public EventRecorder SharedEvents { get; private set; } = null!;

    /// <summary>The accelerator the host's probe chose on this machine (KVM where it boots, TCG elsewhere).</summary>
    public AcceleratorVerdict Accelerator { get; private set; } = AcceleratorChoice.TcgUnprobed;

    public QemuDriverOptions Options(string? extraAppend = null) =>
        new() { RunDirectory = _dir.Path, FenceAfter = TimeSpan.FromMinutes(2), ExtraKernelAppend = extraAppend, Accelerator = Accelerator };

    public async Task InitializeAsync()
    {
        if (!QemuFactAttribute.QemuInstalled)
        {
            return;
        }

        Image = await DemoImage.GetAsync();
        Accelerator = await TestAccelerator.GetAsync();
        Driver = new QemuDriver(Options());
        _heartbeat = new Timer(_ => Driver.Heartbeat(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(500));
        Shared = await Driver.StartAsync(Specs.For(Image, SharedName, SharedVcpus), CancellationToken.None);
        SharedEvents = new EventRecorder(Shared);
    }

    public async Task DisposeAsync()
    {
        if (_heartbeat is not null)
        {
            await _heartbeat.DisposeAsync();
        }

        if (Driver is not null)
        {
            // Ends every VM of this run directory, the guard, then the directory.
            var guardPid = await Driver.GetGuardPidAsync(CancellationToken.None);
            foreach (var vm in await Driver.DiscoverAsync(CancellationToken.None))
            {
                await Driver.KillAsync(vm, CancellationToken.None);
            }

            await Driver.DisposeAsync();
            Processes.KillQuietly(guardPid);
        }

        _dir.Dispose();
    }
}

[Collection(QemuCollection.Name)]
public sealed class QemuDriverTests(QemuFixture fixture)
{
    private QemuDriver Driver => fixture.Driver;

    [QemuFact]
    public async Task Guest_prints_its_ready_banner_with_its_name_on_the_serial_console()
    {
        await fixture.SharedEvents.WaitForBannerAsync(QemuFixture.SharedName);
    }

    [QemuFact]
    public async Task The_tenants_vm_name_is_nowhere_on_the_qemu_command_line()
    {
        var cmdline = await File.ReadAllTextAsync($"/proc/{fixture.Shared.Pid}/cmdline");

        Assert.DoesNotContain(QemuFixture.SharedName, cmdline);
        Assert.Contains($"guest=vm-{fixture.Shared.VmId.Compact}", cmdline);
    }

    [QemuFact]
    public async Task Query_vcpus_gives_one_distinct_live_host_thread_per_vcpu()
    {
        var vcpus = await fixture.Shared.QueryVcpusAsync(CancellationToken.None);

        Assert.Equal(Enumerable.Range(0, QemuFixture.SharedVcpus), vcpus.Select(v => v.Index));
        Assert.Equal(QemuFixture.SharedVcpus, vcpus.Select(v => v.ThreadId).Distinct().Count());
        Assert.All(vcpus, v =>
        {
            Assert.True(Directory.Exists($"/proc/{fixture.Shared.Pid}/task/{v.ThreadId}"), $"vCPU {v.Index}'s thread {v.ThreadId} is not a thread of QEMU");
            Assert.NotNull(ProcStat.ReadThreadCpuTime(fixture.Shared.Pid, v.ThreadId));
        });
    }

    [QemuFact]
    public async Task The_serial_console_runs_what_is_typed_and_its_log_keeps_what_the_guest_prints_with_nobody_connected()
    {
        await fixture.SharedEvents.WaitForBannerAsync(QemuFixture.SharedName);
        var seen = new System.Text.StringBuilder();
        string Seen()
        {
            lock (seen)
            {
                return seen.ToString();
            }
        }

        void Collect(byte[] bytes)
        {
            lock (seen)
            {
                seen.Append(System.Text.Encoding.UTF8.GetString(bytes));
            }
        }

        await using (var console = await fixture.Shared.ConnectConsoleAsync(Collect, CancellationToken.None))
        {
            await console.WriteAsync("(sleep 3; echo unattended-$((5*5))) & echo typed-$((2*21))\r"u8.ToArray(), CancellationToken.None);
            await Eventually.HoldsAsync(() => Seen().Contains("typed-42"), $"the guest's answer on the console; it printed: {Seen()}");
        }

        var log = fixture.Shared.ConsoleLogPath;
        await Eventually.HoldsAsync(() => File.ReadAllText(log).Contains("unattended-25"), "what the guest printed unattended, in console.log");
        // The log also feeds the driver's console lines (the ready banner comes that way).
        await fixture.SharedEvents.WaitForAsync<VmEvent.ConsoleLine>(line => line.Text.Contains("typed-42"), "the typed command's output as a console line");

        await using (var again = await fixture.Shared.ConnectConsoleAsync(Collect, CancellationToken.None))
        {
            await again.WriteAsync("echo again-$((3+4))\r"u8.ToArray(), CancellationToken.None);
            await Eventually.HoldsAsync(() => Seen().Contains("again-7"), $"the answer after connecting again; the guest printed: {Seen()}");
        }
    }

    [QemuFact]
    public async Task Pause_and_resume_raise_stopped_and_resumed_events()
    {
        await fixture.Shared.PauseAsync(CancellationToken.None);
        await fixture.SharedEvents.WaitForAsync<VmEvent.Stopped>(_ => true, "a STOP event after pause");

        await fixture.Shared.ResumeAsync(CancellationToken.None);
        await fixture.SharedEvents.WaitForAsync<VmEvent.Resumed>(_ => true, "a RESUME event after resume");
    }

    [QemuFact]
    public async Task Kill_ends_the_process_and_exited_is_the_last_event()
    {
        var vm = await Driver.StartAsync(Specs.For(fixture.Image, "to-kill"), CancellationToken.None);
        var events = new EventRecorder(vm);
        try
        {
            await vm.KillAsync(CancellationToken.None);

            Assert.False(Processes.Exists(vm.Pid), $"QEMU pid {vm.Pid} is still alive after KillAsync");
            await events.WaitForExitAsync();
            Assert.IsType<VmEvent.Exited>(events.Events[^1]);
        }
        finally
        {
            await vm.DisposeAsync();
            Driver.Cleanup(vm.VmId);
        }
    }

    [QemuFact]
    public async Task Qemu_killed_from_outside_raises_exited()
    {
        var vm = await Driver.StartAsync(Specs.For(fixture.Image, "sigkill"), CancellationToken.None);
        var events = new EventRecorder(vm);
        try
        {
            Processes.KillQuietly(vm.Pid);

            var exited = await events.WaitForExitAsync();
            Assert.Contains("unexpectedly", exited.Reason);
            Assert.False(Processes.Exists(vm.Pid));
        }
        finally
        {
            await vm.DisposeAsync();
            Driver.Cleanup(vm.VmId);
        }
    }

    [QemuFact]
    public async Task A_guest_that_powers_off_raises_a_guest_shutdown_and_then_exited()
    {
        await using var driver = new QemuDriver(fixture.Options("orchestrator.poweroff=1"));
        var vm = await driver.StartAsync(Specs.For(fixture.Image, "poweroff"), CancellationToken.None);
        var events = new EventRecorder(vm);
        try
        {
            await events.WaitForBannerAsync("poweroff");
            var shutdown = await events.WaitForAsync<VmEvent.Shutdown>(_ => true, "SHUTDOWN after the guest's poweroff");
            Assert.True(shutdown.GuestInitiated);
            var exited = await events.WaitForExitAsync();
            Assert.Contains("guest", exited.Reason);
            Assert.IsType<VmEvent.Exited>(events.Events[^1]);
        }
        finally
        {
            await vm.KillAsync(CancellationToken.None);
            driver.Cleanup(vm.VmId);
        }
    }

    [QemuFact]
    public async Task A_guest_without_an_agent_leaves_its_port_closed_and_reports_no_guest_info()
    {
        await fixture.SharedEvents.WaitForBannerAsync(QemuFixture.SharedName);
        var handle = Assert.IsType<QemuVmHandle>(fixture.Shared);

        Assert.False(await handle.AgentListensAsync(CancellationToken.None), "the busybox guest runs no agent, yet its port is open");
        Assert.Null(await handle.QueryGuestAsync(CancellationToken.None));
    }

    [QemuFact]
    public async Task A_requested_shutdown_powers_the_guest_off_through_acpi()
    {
        var vm = await Driver.StartAsync(Specs.For(fixture.Image, "graceful"), CancellationToken.None);
        var events = new EventRecorder(vm);
        try
        {
            await events.WaitForBannerAsync("graceful");

            Assert.Equal(ShutdownRoute.AcpiPowerButton, await vm.RequestShutdownAsync(CancellationToken.None)); // no agent in the demo guest

            var shutdown = await events.WaitForAsync<VmEvent.Shutdown>(_ => true, "SHUTDOWN after system_powerdown");
            Assert.True(shutdown.GuestInitiated);
            await events.WaitForExitAsync();
            Assert.False(Processes.Exists(vm.Pid));
        }
        finally
        {
            await vm.KillAsync(CancellationToken.None);
            await vm.DisposeAsync();
            Driver.Cleanup(vm.VmId);
        }
    }

    [QemuFact]
    public async Task The_burn_flag_keeps_every_vcpu_busy()
    {
        var vm = await Driver.StartAsync(Specs.For(fixture.Image, "burner", vcpus: 2, burn: true), CancellationToken.None);
        var events = new EventRecorder(vm);
        try
        {
            await events.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text == "orchestrator: burning 2 cpu(s)", "the guest's burn message");
            var vcpus = await vm.QueryVcpusAsync(CancellationToken.None);
            var before = vcpus.Select(v => ProcStat.ReadThreadCpuTime(vm.Pid, v.ThreadId) ?? TimeSpan.Zero).ToArray();

            await Eventually.HoldsAsync(
                () => vcpus.Select((v, i) => (ProcStat.ReadThreadCpuTime(vm.Pid, v.ThreadId) ?? TimeSpan.Zero) - before[i])
                    .All(used => used > TimeSpan.FromMilliseconds(300)),
                "the vCPU threads of a burning guest did not accumulate CPU time");
        }
        finally
        {
            await vm.KillAsync(CancellationToken.None);
            await vm.DisposeAsync();
            Driver.Cleanup(vm.VmId);
        }
    }

    [QemuFact]
    public async Task A_restarted_driver_discovers_and_adopts_a_running_vm_without_restarting_it()
    {
        var first = new QemuDriver(fixture.Options());
        var spec = Specs.For(fixture.Image, "survivor", epoch: 7);
        var original = await first.StartAsync(spec, CancellationToken.None);
        var pid = original.Pid;
        try
        {
            await new EventRecorder(original).WaitForBannerAsync("survivor");
            await first.DisposeAsync(); // the node goes away; the VM stays with the guard

            await using var second = new QemuDriver(fixture.Options());
            var discovered = Assert.Single(await second.DiscoverAsync(CancellationToken.None), d => d.VmId == spec.VmId);
            Assert.Equal(pid, discovered.Pid);
            Assert.Equal(new Epoch(7), discovered.Epoch);

            var adopted = await second.AdoptAsync(discovered, CancellationToken.None);
            var events = new EventRecorder(adopted);
            Assert.Equal(pid, adopted.Pid);
            await events.WaitForBannerAsync("survivor"); // the console is replayed from its start
            Assert.Single(await adopted.QueryVcpusAsync(CancellationToken.None));

            await second.KillAsync(discovered, CancellationToken.None);
            Assert.False(Processes.Exists(pid));
            Assert.DoesNotContain(await second.DiscoverAsync(CancellationToken.None), d => d.VmId == spec.VmId);
            Assert.False(Directory.Exists(Path.Combine(fixture.RunDirectory, "vms", spec.VmId.Compact)));
        }
        finally
        {
            Processes.KillQuietly(pid);
            await first.DisposeAsync();
            fixture.Driver.Cleanup(spec.VmId);
        }
    }

    [QemuFact]
    public async Task The_guard_kills_the_vms_when_the_heartbeats_stop()
    {
        using var dir = new TempDir();
        var driver = new QemuDriver(new QemuDriverOptions { RunDirectory = dir.Path, FenceAfter = TimeSpan.FromSeconds(2) });
        var heartbeat = new Timer(_ => driver.Heartbeat(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(200));
        int? guardPid = null;
        IVmHandle? vm = null;
        try
        {
            guardPid = await driver.GetGuardPidAsync(CancellationToken.None);
            vm = await driver.StartAsync(Specs.For(fixture.Image, "fenced"), CancellationToken.None);
            var events = new EventRecorder(vm);

            await heartbeat.DisposeAsync(); // the node hangs

            await events.WaitForExitAsync();
            Assert.False(Processes.Exists(vm.Pid), "QEMU outlived fence-after without heartbeats");
            await Eventually.HoldsAsync(() => !Processes.Exists(guardPid.Value), "the guard did not exit after fencing");
            Assert.False(File.Exists(Path.Combine(dir.Path, "guard.sock")));
            Assert.Contains("no heartbeat", await File.ReadAllTextAsync(Path.Combine(dir.Path, "guard.log")));
        }
        finally
        {
            await heartbeat.DisposeAsync();
            if (vm is not null)
            {
                Processes.KillQuietly(vm.Pid);
            }

            if (guardPid is { } pid)
            {
                Processes.KillQuietly(pid);
            }

            await driver.DisposeAsync();
        }
    }

    [QemuFact]
    public async Task Vms_die_with_their_guard()
    {
        using var dir = new TempDir();
        var driver = new QemuDriver(new QemuDriverOptions { RunDirectory = dir.Path, FenceAfter = TimeSpan.FromMinutes(2) });
        var heartbeat = new Timer(_ => driver.Heartbeat(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(500));
        int? guardPid = null;
        IVmHandle? vm = null;
        try
        {
            guardPid = await driver.GetGuardPidAsync(CancellationToken.None);
            vm = await driver.StartAsync(Specs.For(fixture.Image, "orphan"), CancellationToken.None);
            var events = new EventRecorder(vm);
            await heartbeat.DisposeAsync();

            Processes.KillQuietly(guardPid.Value); // SIGKILL: no chance to clean up

            await events.WaitForExitAsync();
            Assert.False(Processes.Exists(vm.Pid), "QEMU outlived its guard (PR_SET_PDEATHSIG did not fire)");
        }
        finally
        {
            await heartbeat.DisposeAsync();
            if (vm is not null)
            {
                Processes.KillQuietly(vm.Pid);
            }

            if (guardPid is { } pid)
            {
                Processes.KillQuietly(pid);
            }

            await driver.DisposeAsync();
        }
    }

    [QemuFact]
    public async Task A_qemu_that_exits_during_start_fails_with_its_own_error_and_leaves_nothing_behind()
    {
        using var dir = new TempDir();
        var garbage = Path.Combine(dir.Path, "not-a-kernel");
        await File.WriteAllBytesAsync(garbage, new byte[4096]);
        var image = fixture.Image with { KernelPath = garbage };
        var spec = Specs.For(image, "broken");

        var error = await Assert.ThrowsAsync<HypervisorException>(() => Driver.StartAsync(spec, CancellationToken.None));

        Assert.Contains("QEMU exited", error.Message);
        Assert.Contains("qemu", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.False(Directory.Exists(Path.Combine(fixture.RunDirectory, "vms", spec.VmId.Compact)));
    }

    [Fact]
    public async Task A_missing_qemu_binary_fails_clearly_and_leaves_nothing_behind()
    {
        using var dir = new TempDir();
        await using var driver = new QemuDriver(new QemuDriverOptions { RunDirectory = dir.Path, QemuBinary = "qemu-system-nonexistent" });
        var spec = Specs.For(new GuestImage("x", "/proc/self/stat", "/proc/self/stat", ""), "x");

        var error = await Assert.ThrowsAsync<HypervisorException>(() => driver.StartAsync(spec, CancellationToken.None));

        Assert.Contains("qemu-system-nonexistent", error.Message);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "vms", spec.VmId.Compact)));
        Assert.False(File.Exists(Path.Combine(dir.Path, "guard.sock")), "no guard should start for a VM that cannot start");
    }

    [Fact]
    public async Task An_unreadable_kernel_fails_clearly_and_leaves_nothing_behind()
    {
        using var dir = new TempDir();
        await using var driver = new QemuDriver(new QemuDriverOptions { RunDirectory = dir.Path, QemuBinary = "/bin/true" });
        var spec = Specs.For(new GuestImage("demo", "/nonexistent/vmlinuz", "/nonexistent/initrd.img", ""), "x");

        var error = await Assert.ThrowsAsync<HypervisorException>(() => driver.StartAsync(spec, CancellationToken.None));

        Assert.Contains("kernel of image 'demo'", error.Message);
        Assert.Contains("/nonexistent/vmlinuz", error.Message);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "vms", spec.VmId.Compact)));
    }
}
