using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// A real Prometheus (Debian's package) scraping a real node running a VM with the sample config in
/// config/prometheus.yml, its target and key file pointed at the node: what its query API then answers.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class PrometheusScrapeTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Debian's package; scripts/prerequisites.sh --tests installs it.</summary>
    public const string PrometheusBinary = "/usr/bin/prometheus";

    private NodeProcess _node = null!;
    private Process? _prometheus;
    private readonly string _work = Directory.CreateTempSubdirectory("orprom").FullName;
    private readonly HttpClient _query = new() { Timeout = TimeSpan.FromSeconds(10) };

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(PrometheusBinary), $"{PrometheusBinary} is missing: run scripts/prerequisites.sh --tests (it installs Debian's prometheus)");
        _node = await NodeProcess.StartAsync(output);
    }

    public async Task DisposeAsync()
    {
        if (_prometheus is { HasExited: false })
        {
            _prometheus.Kill(entireProcessTree: true);
            await _prometheus.WaitForExitAsync();
        }

        _prometheus?.Dispose();
        _query.Dispose();
        await _node.DisposeAsync();
        Directory.Delete(_work, recursive: true);
    }

    [Fact]
    public async Task Prometheus_with_the_sample_config_scrapes_vm_states_and_create_latency_and_a_tenants_key_is_refused()
    {
        var tenantKey = await _node.TenantKeyAsync("scraped");
        using var tenant = _node.ClientWith(tenantKey);
        Assert.Equal(System.Net.HttpStatusCode.Created, (await tenant.PostAsync("v1/vms",
            new StringContent("""{"name":"watched","vcpus":1,"memoryMiB":128,"image":"demo"}""", System.Text.Encoding.UTF8, "application/json"))).StatusCode);
        await _node.Eventually(async () => (string?)JsonNode.Parse(await tenant.GetStringAsync("v1/vms/watched"))!["state"] == "Ready" ? true : (bool?)null,
            TimeSpan.FromSeconds(120), "the VM to be ready");

        // The sample as shipped, with this node's address and key file, a quick interval, and a second job that
        // presents the tenant's key: Prometheus must see that target as down.
        var sample = await File.ReadAllTextAsync(Path.Combine(Checkout.Root(), "config", "prometheus.yml"));
        var target = _node.Http.BaseAddress!.Authority;
        var tenantKeyFile = Path.Combine(_work, "tenant.key");
        await File.WriteAllTextAsync(tenantKeyFile, tenantKey + "\n");
        var config = sample
            .Replace("scrape_interval: 15s", "scrape_interval: 1s", StringComparison.Ordinal)
            .Replace("/var/lib/orchestrator/admin.key", Path.Combine(_node.DataDir, "admin.key"), StringComparison.Ordinal)
            .Replace("127.0.0.1:7480", target, StringComparison.Ordinal);
        Assert.NotEqual(sample, config);
        config += $"""

                     - job_name: as-tenant
                       metrics_path: /metrics
                       authorization:
                         type: Bearer
                         credentials_file: {tenantKeyFile}
                       static_configs:
                         - targets: ["{target}"]

                   """;
        var configFile = Path.Combine(_work, "prometheus.yml");
        await File.WriteAllTextAsync(configFile, config);

        var port = Checkout.FreePort();
        _query.BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        StartPrometheus(configFile, port);

        Assert.Equal(1, await WaitForValueAsync("up{job=\"orchestrator\"}", v => v == 1));
        Assert.Equal(0, await WaitForValueAsync("up{job=\"as-tenant\"}", v => v == 0));
        Assert.Equal(1, await WaitForValueAsync("sum(orchestrator_vms{state=\"Ready\",tenant=\"scraped\"})", v => v == 1));
        Assert.Equal(1, await WaitForValueAsync("sum(orchestrator_vm_create_to_ready_duration_seconds_count)", v => v >= 1));
        var buckets = await QueryAsync("orchestrator_vm_create_to_ready_duration_seconds_bucket");
        Assert.NotEmpty(buckets);
        // Nothing a tenant named becomes a label: not even through Prometheus.
        Assert.DoesNotContain("watched", (await QueryAsync("{job=\"orchestrator\"}")).ToJsonString());
    }

    private void StartPrometheus(string configFile, int port)
    {
        var start = new ProcessStartInfo(PrometheusBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     $"--config.file={configFile}", $"--storage.tsdb.path={Path.Combine(_work, "data")}",
                     $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
                 })
        {
            start.ArgumentList.Add(arg);
        }

        _prometheus = Process.Start(start)!;
        _prometheus.OutputDataReceived += (_, e) => Log(e.Data);
        _prometheus.ErrorDataReceived += (_, e) => Log(e.Data);
        _prometheus.BeginOutputReadLine();
        _prometheus.BeginErrorReadLine();
    }

    private void Log(string? line)
    {
        try
        {
            if (line is not null)
            {
                output.WriteLine($"prometheus: {line}");
            }
        }
        catch (InvalidOperationException)
        {
            // the test is over
        }
    }

    /// <summary>The instant vector's samples for <paramref name="promql"/>, from Prometheus's query API.</summary>
    private async Task<JsonArray> QueryAsync(string promql)
    {
        var body = await _query.GetStringAsync($"api/v1/query?query={Uri.EscapeDataString(promql)}");
        var answer = JsonNode.Parse(body)!;
        Assert.Equal("success", (string?)answer["status"]);
        return answer["data"]!["result"]!.AsArray();
    }

    /// <summary>Waits until the query's one sample satisfies <paramref name="wanted"/> (Prometheus scrapes every second), then returns it.</summary>
    private async Task<double> WaitForValueAsync(string promql, Func<double, bool> wanted)
    {
        var value = await _node.Eventually<string>(async () =>
        {
            Assert.False(_prometheus!.HasExited, "prometheus exited; its log is above");
            JsonArray result;
            try
            {
                result = await QueryAsync(promql);
            }
            catch (HttpRequestException)
            {
                return null; // not listening yet
            }

            return result.Count == 1 && (string?)result[0]!["value"]![1] is { } text && wanted(double.Parse(text, CultureInfo.InvariantCulture))
                ? text
                : null;
        }, TimeSpan.FromSeconds(60), $"prometheus to answer {promql}");
        return double.Parse(value, CultureInfo.InvariantCulture);
    }
}
