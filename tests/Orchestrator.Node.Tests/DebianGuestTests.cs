// A real Debian 12 guest (images/build-debian-image.sh) under the host's accelerator: cloud-init and the guest agent.
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Orchestrator.Node;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

[Collection(NodeCollection.Name)]
public sealed class DebianGuestTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Under TCG on a shared two-core machine the boot to cloud-init's end takes minutes; the bound only catches hangs.</summary>
    private const int BootSeconds = 600;

    private NodeProcess _node = null!;

    public async Task InitializeAsync()
    {
        await DebianImage.EnsureBuiltAsync(output);
        // Debian powers off in seconds under KVM, tens of seconds under TCG: the test's node waits as long as a user's would.
        _node = await NodeProcess.StartAsync(output, extraConfig: "orchestrator.host.stop-timeout = 180s\n");
    }

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task Debian_boots_through_cloud_init_its_agent_reports_the_guest_and_stop_powers_it_off_cleanly()
    {
        var watch = Stopwatch.StartNew();
        // The NoCloud seed is cloud-init's datasource: it names the guest, installs the key, and runs the script, which
        // reports to the serial console what it found.
        var userData = Encoding.UTF8.GetBytes(
            "#!/bin/sh\necho \"deb-user-data: host=$(hostname) key=$(cat /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys 2>/dev/null | grep -c me@deb-test)\" > /dev/ttyS0\n");
        var created = await _node.Http.PostAsJsonAsync("v1/vms", new
        {
            name = "deb1", vcpus = 1, memoryMiB = 512, image = "debian", hostname = "debhost",
            sshKeys = new[] { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiqCh9NnzBUj+DmyWnvEl25VXV4S1lDzwAFpRgytTny me@deb-test" }, userData,
        });
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);

        // Ready is cloud-init's "finished" line on the serial console.
        var ready = await _node.WaitForVmAsync("deb1", "Ready", seconds: BootSeconds);
        output.WriteLine($"deb1: create → cloud-init finished (Ready) in {watch.Elapsed.TotalSeconds:F0} s");
        Assert.Contains(ready["consoleTail"]!.AsArray(), line => ((string?)line)!.Contains("Cloud-init v. ", StringComparison.Ordinal));

        // The agent starts before cloud-init ends; the VM actor asks it every few seconds.
        var shown = await _node.WaitForVmAsync("deb1", "Ready", vm => vm["guest"] is JsonObject, seconds: 120);
        var guest = shown["guest"]!;
        output.WriteLine($"deb1 guest: {guest.ToJsonString()}");
        Assert.Equal("debhost", (string?)guest["hostname"]);
        Assert.Contains("Debian GNU/Linux 12", (string?)guest["os"]);

        var console = (await File.ReadAllTextAsync(Path.Combine(_node.RunDir, "vms", (string)ready["id"]!, "console.log")))
            .Replace("\r\n", "\n", StringComparison.Ordinal);
        Assert.Matches(@"deb-user-data: host=debhost key=[1-9]", console);

        // Stop asks the agent for a clean shutdown: the guest powers itself off well before the host would kill it.
        var pid = (int)shown["pid"]!;
        watch.Restart();
        Assert.Equal(202, (int)(await _node.Http.PostAsync("v1/vms/deb1/stop", null)).StatusCode);
        var stopped = await _node.WaitForVmAsync("deb1", "Stopped", seconds: 300);
        output.WriteLine($"deb1: stop → Stopped in {watch.Elapsed.TotalSeconds:F0} s; reason: {(string?)stopped["reason"]}");
        Assert.False(Tools.Bench.ProcessTable.IsAlive(pid));
        Assert.Contains("VM deb1: asked the guest to power off (GuestAgent)", _node.Log, StringComparison.Ordinal);
        Assert.DoesNotContain("did not power off", _node.Log, StringComparison.Ordinal);
    }
}

/// <summary>The Debian image, built by images/build-debian-image.sh when missing or older than the script (minutes).</summary>
internal static class DebianImage
{
    private static readonly SemaphoreSlim BuildLock = new(1, 1);

    public static async Task EnsureBuiltAsync(ITestOutputHelper output)
    {
        await BuildLock.WaitAsync();
        try
        {
            var script = Path.Combine(Checkout.Root(), "images", "build-debian-image.sh");
            using var build = Process.Start(new ProcessStartInfo("bash", [script])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            })!;
            var stdout = build.StandardOutput.ReadToEndAsync();
            var stderr = build.StandardError.ReadToEndAsync();
            using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(30));
            await build.WaitForExitAsync(bound.Token);
            output.WriteLine((await stdout).Trim());
            if (build.ExitCode != 0)
            {
                throw new InvalidOperationException($"images/build-debian-image.sh failed (exit {build.ExitCode}):\n{await stdout}\n{await stderr}");
            }
        }
        finally
        {
            BuildLock.Release();
        }
    }
}
