using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Cli;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// A real node process (`orchestrator node`) on its own data dir and a free port, with an HTTP client holding its
/// admin key. Disposing kills the node, its fence guard and (through the guard) every QEMU process it started.
/// </summary>
public sealed class NodeProcess : IAsyncDisposable
{
    private static readonly string BinDir = AppContext.BaseDirectory;
    private readonly ITestOutputHelper? _output;
    private readonly List<string> _log = [];
    private Process? _process;

    private readonly IReadOnlyList<string> _extraArgs;
    private IReadOnlyList<string> _launcher = [];
    private string _listen = "127.0.0.1:0";

    private NodeProcess(string dataDir, string? extraConfig, ITestOutputHelper? output, IReadOnlyList<string> extraArgs)
    {
        DataDir = dataDir;
        _output = output;
        _extraArgs = extraArgs;
        ConfigFile = Path.Combine(dataDir, "test.conf");
        File.WriteAllText(ConfigFile, """
            orchestrator.host.fence-after = 4s
            orchestrator.host.stop-timeout = 3s
            orchestrator.host.restart-backoff.initial = 200ms
            # Tests' nodes in the machine's own namespace make no router of it; NatAndForwardTests turns NAT on in its own.
            orchestrator.network.uplink = off
            """ + $"\norchestrator.host.accel-probe.cache-file = \"{ProbeCacheFile}\"\n" + (extraConfig ?? ""));
    }

    /// <summary>
    /// Every node of a test run keeps its accelerator verdict in one place (the Hypervisor tests name it too), so the
    /// run probes once per machine boot rather than once per node (seconds each where KVM opens but crawls).
    /// </summary>
    public static readonly string ProbeCacheFile = Path.Combine(Path.GetTempPath(), "orchestrator-tests", "accel-probe.json");

    private bool _waitForScheduler = true;

    public string DataDir { get; }
    public string ConfigFile { get; }
    public HttpClient Http { get; private set; } = null!;
    public int Pid => _process!.Id;
    public string RunDir => Path.Combine(DataDir, "run");

    /// <summary>Everything the node printed, for failure messages.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return string.Join("\n", _log.TakeLast(80));
            }
        }
    }

    public static async Task<NodeProcess> StartAsync(ITestOutputHelper? output = null, string? extraConfig = null, string? dataDir = null,
        IReadOnlyList<string>? extraArgs = null, bool waitForScheduler = true, IReadOnlyList<string>? launcher = null,
        string listen = "127.0.0.1:0")
    {
        dataDir ??= Directory.CreateTempSubdirectory("orn").FullName;
        var node = new NodeProcess(dataDir, extraConfig, output, extraArgs ?? []);
        node._waitForScheduler = waitForScheduler;
        node._launcher = launcher ?? [];
        node._listen = listen;
        await node.StartAgainAsync();
        return node;
    }

    /// <summary>Starts the node process (again, after <see cref="StopAsync"/> or <see cref="Kill"/>) on the same data dir.</summary>
    public async Task StartAgainAsync()
    {
        File.Delete(Path.Combine(DataDir, NodeDiscoveryFiles.NodeFileName));
        // A launcher (e.g. `ip netns exec NS`) execs dotnet, so the process id stays the node's.
        var command = _launcher.Concat(["dotnet", Path.Combine(BinDir, "orchestrator.dll"), "node", "--data", DataDir, "--listen", _listen]).ToList();
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in command.Skip(1))
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var arg in _extraArgs)
        {
            start.ArgumentList.Add(arg);
        }

        start.ArgumentList.Add("--config");
        start.ArgumentList.Add(ConfigFile);
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => Record(e.Data);
        _process.ErrorDataReceived += (_, e) => Record(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(60);
        NodeDiscovery? found = null;
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            found = NodeDiscoveryFiles.TryRead(DataDir);
            if (found is not null && found.Pid == _process.Id && found.AdminKey is not null)
            {
                break;
            }

            await Task.Delay(100);
        }

        if (found?.AdminKey is null || found.Pid != _process.Id)
        {
            throw new InvalidOperationException($"the node did not come up (exited: {_process.HasExited}). Log:\n{Log}");
        }

        Http = new HttpClient { BaseAddress = new Uri(found.Url), Timeout = TimeSpan.FromSeconds(30) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", found.AdminKey);
        if (!_waitForScheduler)
        {
            return;
        }

        // The scheduler singleton needs a moment after the HTTP listener is up.
        await Eventually(async () => (await Http.GetAsync("v1/hosts")).IsSuccessStatusCode ? true : (bool?)null,
            TimeSpan.FromSeconds(30), "the scheduler to answer");
    }

    private void Record(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.Add(line);
        }

        try
        {
            _output?.WriteLine(line);
        }
        catch (InvalidOperationException)
        {
            // the test is over; xunit no longer takes output
        }
    }

    /// <summary>Every line the node printed so far (stdout and stderr), in order.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_log)
            {
                return [.. _log];
            }
        }
    }

    /// <summary>Graceful stop (SIGTERM, like Ctrl-C): the VMs keep running under the guard.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } p)
        {
            Signal(p.Id, "TERM");
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(timeout.Token);
        }
    }

    public bool HasExited => _process?.HasExited ?? true;

    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

    /// <summary>kill -9 the node process only.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill();
            p.WaitForExit();
        }
    }

    /// <summary>A client of this node presenting <paramref name="key"/> (no Authorization header when null).</summary>
    public HttpClient ClientWith(string? key)
    {
        var client = new HttpClient { BaseAddress = Http.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>Creates a tenant (admin) and issues it a key of <paramref name="role"/>; returns the key.</summary>
    public async Task<string> TenantKeyAsync(string tenant, string role = "member", object? quota = null)
    {
        var created = await Http.PostAsJsonAsync("v1/tenants", new { id = tenant, quota });
        if (created.StatusCode != System.Net.HttpStatusCode.Conflict && (int)created.StatusCode != 201)
        {
            throw new InvalidOperationException($"create tenant {tenant}: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}");
        }

        var issued = await Http.PostAsJsonAsync($"v1/tenants/{tenant}/keys", new { role, name = "test" });
        var body = await issued.Content.ReadAsStringAsync();
        return (int)issued.StatusCode == 201
            ? (string)JsonNode.Parse(body)!["key"]!
            : throw new InvalidOperationException($"issue key for {tenant}: {(int)issued.StatusCode} {body}");
    }

    public async Task<JsonObject> CreateVmAsync(string name, string restartPolicy = "on-failure", int vcpus = 1, string image = "demo",
        int memoryMiB = 256)
    {
        var response = await Http.PostAsJsonAsync("v1/vms", new { name, vcpus, memoryMiB, image, restartPolicy });
        var body = await response.Content.ReadAsStringAsync();
        if ((int)response.StatusCode != 201)
        {
            throw new InvalidOperationException($"create {name}: {(int)response.StatusCode} {body}");
        }

        return JsonNode.Parse(body)!.AsObject();
    }

    public async Task<JsonObject?> GetVmAsync(string name)
    {
        var response = await Http.GetAsync($"v1/vms/{name}");
        return response.StatusCode == System.Net.HttpStatusCode.NotFound
            ? null
            : JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
    }

    /// <summary>Waits until the VM reports <paramref name="state"/> (and <paramref name="also"/> holds), failing with the node's log.</summary>
    public Task<JsonObject> WaitForVmAsync(string name, string state, Func<JsonObject, bool>? also = null, int seconds = 90) =>
        Eventually(async () =>
        {
            var vm = await GetVmAsync(name);
            return vm is not null && (string?)vm["state"] == state && (also?.Invoke(vm) ?? true) ? vm : null;
        }, TimeSpan.FromSeconds(seconds), $"VM {name} to be {state}");

    public async Task<T> Eventually<T>(Func<Task<T?>> probe, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (await probe() is { } value && (value is not bool b || b))
                {
                    return value;
                }
            }
            catch (HttpRequestException ex)
            {
                last = ex;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"gave up waiting for {what} after {timeout.TotalSeconds} s ({last?.Message}). Node log:\n{Log}");
    }

    /// <summary>Live QEMU processes of this node's data dir, by VM id (from `-name guest=vm-ID`).</summary>
    public IReadOnlyDictionary<string, int> QemuProcesses() => ProcessTable.QemuUnder(RunDir);

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        Kill();
        // The guard holds every QEMU process as a child with pdeathsig: killing it ends them all.
        foreach (var guard in ProcessTable.Matching(Path.Combine(RunDir, "guard.sock")))
        {
            Signal(guard, "KILL");
        }

        await Eventually(() => Task.FromResult<bool?>(QemuProcesses().Count == 0), TimeSpan.FromSeconds(20), "QEMU processes to end");
        RemoveCgroups();
        RemoveNetworks();
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>
    /// A killed node leaves its VMs' (now empty) cgroups behind; the next node with its host id would remove them, but
    /// a test leaves the machine as it found it.
    /// </summary>
    private void RemoveCgroups()
    {
        var settings = string.Join("\n", _extraArgs) + "\n" + File.ReadAllText(ConfigFile);
        var named = System.Text.RegularExpressions.Regex.Match(settings, @"host-id\s*=\s*""?([A-Za-z0-9_.-]+)");
        RemoveCgroupsOf(named.Success ? named.Groups[1].Value : Environment.MachineName.ToLowerInvariant(), _output);
    }

    /// <summary>
    /// A killed node leaves its networks' router namespaces (dnsmasq still in them) and its static-host files; the next
    /// node on the same data dir would remove them, but none comes after the test.
    /// </summary>
    private void RemoveNetworks()
    {
        var networking = new Hypervisor.Networking.HostNetworking(Path.Combine(RunDir, "net"));
        GuestNetworkProbes.RemoveNamespaces(networking.RouterNamespaces(), _output);
        if (Directory.Exists(networking.HostsRoot))
        {
            Directory.Delete(networking.HostsRoot, recursive: true);
        }
    }

    /// <summary>Removes the (empty) VM cgroups a node of <paramref name="hostId"/> left behind.</summary>
    public static void RemoveCgroupsOf(string hostId, ITestOutputHelper? output)
    {
        var layout = Hypervisor.Cgroups.CgroupLayout.Detect();
        if (layout.Version == Hypervisor.Cgroups.CgroupVersion.None)
        {
            return;
        }

        try
        {
            new Hypervisor.Cgroups.VmCgroups(layout, Actors.Hosts.HostCgroups.Scope(new Domain.HostId(hostId)))
                .RemoveAll(TimeSpan.FromSeconds(10));
        }
        catch (Hypervisor.HypervisorException ex)
        {
            output?.WriteLine($"cgroups of host {hostId} left in place: {ex.Message}");
        }
    }

    public static void Signal(int pid, string signal) =>
        Process.Start(new ProcessStartInfo("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]))!.WaitForExit();
}
