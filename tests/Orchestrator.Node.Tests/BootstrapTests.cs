using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>A VM's NoCloud seed, end to end: the API takes it, the ledger keeps it, the demo guest reads it.</summary>
[Collection(NodeCollection.Name)]
public sealed class BootstrapTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiqCh9NnzBUj+DmyWnvEl25VXV4S1lDzwAFpRgytTny me@host";

    private NodeProcess _node = null!;

    public async Task InitializeAsync() => _node = await NodeProcess.StartAsync(output);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task Hostname_and_a_user_data_script_reach_the_guest_and_hostile_bytes_arrive_unchanged_touching_nothing_on_the_host()
    {
        // The script prints and exits before its hostile tail; the tail (substitutions, a command separator, quotes, NULs)
        // is what the host must carry without ever interpreting it.
        var marker = Path.Combine(Path.GetTempPath(), $"pwned-{Guid.NewGuid():N}");
        byte[] userData =
        [
            .. Encoding.UTF8.GetBytes(
                $"#!/bin/sh\necho \"user-data ran on $(hostname)\"\nexit 0\n$(touch {marker}) ; touch {marker} ; rm -rf {marker}-dir 'single' \"double\" `touch {marker}`\n"),
            0, 0, .. "\nafter two NULs\n"u8, 0xff,
        ];
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(userData));

        var created = await _node.Http.PostAsJsonAsync("v1/vms",
            new { name = "seeded", vcpus = 1, memoryMiB = 128, image = "demo", hostname = "seeded.example.org", sshKeys = new[] { Key }, userData });
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);

        var ready = await _node.WaitForVmAsync("seeded", "Ready");
        var console = await ConsoleAsync(Path.Combine(_node.RunDir, "vms", (string)ready["id"]!, "console.log"));
        Assert.Contains("orchestrator: hostname seeded.example.org\n", console);
        Assert.Contains($"orchestrator: user-data {userData.Length} bytes, sha256 {sha256}\n", console);
        Assert.Contains("user-data ran on seeded.example.org\n", console);
        Assert.Contains("orchestrator: user-data exited 0\n", console);
        Assert.Contains("ORCHESTRATOR-GUEST-READY seeded", console);
        Assert.False(File.Exists(marker), "user-data ran on the host");

        // Shown by digest only: the bytes never come back.
        var shown = await _node.Http.GetStringAsync("v1/vms/seeded");
        Assert.DoesNotContain(Convert.ToBase64String(userData), shown);
        var bootstrap = ready["bootstrap"]!;
        Assert.Equal("seeded.example.org", (string?)bootstrap["hostname"]);
        Assert.Equal("SHA256:jkIpt94HJjBr5WOb66OAxNRWSCpYoGuyVu0SU5R0iMQ", (string?)bootstrap["sshKeyFingerprints"]![0]);
        Assert.Equal(userData.Length, (int)bootstrap["userDataBytes"]!);
        Assert.Equal(sha256, (string?)bootstrap["userDataSha256"]);
    }

    [Fact]
    public async Task A_vm_without_a_bootstrap_is_named_after_itself_in_its_guest_and_a_restart_rebuilds_its_seed()
    {
        await _node.CreateVmAsync("plain");
        var first = await _node.WaitForVmAsync("plain", "Ready");
        var consolePath = Path.Combine(_node.RunDir, "vms", (string)first["id"]!, "console.log");
        Assert.Contains("orchestrator: hostname plain\n", await ConsoleAsync(consolePath));
        Assert.DoesNotContain("orchestrator: user-data", await ConsoleAsync(consolePath));

        NodeProcess.Signal((int)first["pid"]!, "KILL");
        var again = await _node.WaitForVmAsync("plain", "Ready", vm => (int?)vm["pid"] != (int)first["pid"]!);
        Assert.Contains("orchestrator: hostname plain\n", await ConsoleAsync(consolePath));
        Assert.Equal(1, (int)again["restarts"]!);
    }

    /// <summary>The guest's serial console, its "\r\n" line ends as "\n".</summary>
    private static async Task<string> ConsoleAsync(string path) => (await File.ReadAllTextAsync(path)).Replace("\r\n", "\n", StringComparison.Ordinal);
}
