using System.Diagnostics;

namespace Orchestrator.Node.Tests;

/// <summary>A node refuses to start on settings that can't work, saying which ones and why.</summary>
public sealed class ConfigurationTests
{
    private static async Task<(int ExitCode, string Error)> StartNodeAsync(params string[] args)
    {
        var data = Directory.CreateTempSubdirectory("orcf").FullName;
        try
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "orchestrator.dll"), "node", "--data", data, "--listen", "127.0.0.1:0" }.Concat(args))
            {
                start.ArgumentList.Add(arg);
            }

            using var process = Process.Start(start)!;
            var error = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new InvalidOperationException($"the node started instead of refusing: {await stdout}");
            }

            return (process.ExitCode, await error);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task Fencing_timings_that_could_let_a_vm_run_twice_refuse_to_start_with_the_numbers()
    {
        var (exit, error) = await StartNodeAsync("--set", "orchestrator.host.fence-after=20s",
            "--set", "orchestrator.cluster.replace-after-down=1s");
        Assert.Equal(2, exit);
        Assert.Contains("fencing timings conflict", error);
        Assert.Contains("20 s (fence-after)", error);
    }

    [Fact]
    public async Task The_native_kvm_driver_without_a_usable_dev_kvm_refuses_to_start()
    {
        if (Orchestrator.Hypervisor.Kvm.KvmDriver.IsAvailable(out _))
        {
            return; // this machine has /dev/kvm: nothing to refuse
        }

        var (exit, error) = await StartNodeAsync("--set", "orchestrator.host.driver=kvm");
        Assert.Equal(2, exit);
        Assert.Contains("orchestrator.host.driver = kvm, but the native engine's probe did not boot a guest", error);
        Assert.Contains("/dev/kvm", error);
    }

    [Fact]
    public async Task Forcing_kvm_where_the_accelerator_probe_fails_refuses_to_start_saying_what_it_saw()
    {
        // A stand-in QEMU that aborts as QEMU 7.2 does on a nested host: the refusal holds on every kind of machine
        // (without /dev/kvm the probe stops before it runs anything; where KVM opens but runs guests too slowly, at its
        // speed check, before QEMU).
        var standIn = Path.Combine(Directory.CreateTempSubdirectory("orcq").FullName, "qemu-system-x86_64");
        File.WriteAllText(standIn, "#!/bin/sh\necho 'failed to set MSR 0x10a to 0x69' >&2\nexit 134\n");
        File.SetUnixFileMode(standIn, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            var (exit, error) = await StartNodeAsync("--set", "orchestrator.host.accel=kvm", "--set", $"orchestrator.host.qemu-binary=\"{standIn}\"");

            Assert.Equal(2, exit);
            Assert.Contains("orchestrator.host.accel = kvm, but the accelerator probe found KVM unusable: ", error);
            Assert.True(error.Contains("cannot open /dev/kvm") || error.Contains("too slow (speed check: did not finish")
                        || error.Contains("exit code 134: failed to set MSR 0x10a"), error);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(standIn)!, recursive: true);
        }
    }

    [Fact]
    public async Task A_malformed_setting_is_named()
    {
        var (exit, error) = await StartNodeAsync("--set", "orchestrator.scheduler.strategy=sideways");
        Assert.Equal(2, exit);
        Assert.Contains("orchestrator.scheduler.strategy", error);
    }

    [Theory]
    [InlineData("orchestrator.host.driver=simulated")] // how many hosts?
    [InlineData("orchestrator.host.simulated-hosts=5")] // with QEMU: a typo for the simulated driver
    public async Task Simulated_hosts_and_the_simulated_driver_come_together(string setting)
    {
        var (exit, error) = await StartNodeAsync("--set", setting);
        Assert.Equal(2, exit);
        Assert.Contains("orchestrator.host.simulated-hosts must be 1-99999 with driver = simulated", error);
    }

    [Theory]
    [InlineData("orchestrator.host.cpuset=\"2-x\"", "orchestrator.host.cpuset")]
    [InlineData("orchestrator.host.cgroups=sometimes", "orchestrator.host.cgroups")]
    public async Task A_malformed_cpuset_or_cgroup_mode_is_named(string setting, string named)
    {
        var (exit, error) = await StartNodeAsync("--set", setting);
        Assert.Equal(2, exit);
        Assert.Contains(named, error);
    }

    [Fact]
    public async Task Required_cgroups_with_a_cpuset_the_machine_lacks_refuse_to_start()
    {
        var (exit, error) = await StartNodeAsync("--set", "orchestrator.host.cgroups=required", "--set", "orchestrator.host.cpuset=\"4000\"",
            "--set", $"orchestrator.host-id=cf-{Environment.ProcessId}");
        Assert.Equal(2, exit);
        Assert.Contains("orchestrator.host.cgroups = required", error);
        Assert.Contains("4000", error);
    }
}
