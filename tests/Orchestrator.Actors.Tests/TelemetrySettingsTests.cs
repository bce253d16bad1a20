using Akka.Configuration;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Actors.Tests;

public sealed class TelemetrySettingsTests
{
    [Fact]
    public void The_shipped_config_sizes_metrics_for_20000_vms_and_2000_hosts_with_traces_off()
    {
        var telemetry = TelemetrySettings.Create(OrchestratorConfig.Load([]).GetConfig("orchestrator.telemetry"));
        Assert.Equal(20_000, telemetry.MaxVms);
        Assert.Equal(2_000, telemetry.MaxHosts);
        Assert.Null(telemetry.OtlpEndpoint);
    }

    [Fact]
    public void Max_vms_and_hosts_are_read_beside_the_endpoint_and_out_of_range_values_name_the_key()
    {
        var telemetry = TelemetrySettings.Create(ConfigurationFactory.ParseString(
            "max-vms = 100000, max-hosts = 10000, otlp-endpoint = \"http://127.0.0.1:4318\""));
        Assert.Equal(100_000, telemetry.MaxVms);
        Assert.Equal(10_000, telemetry.MaxHosts);
        Assert.Equal(new Uri("http://127.0.0.1:4318"), telemetry.OtlpEndpoint);
        Assert.Contains("orchestrator.telemetry.max-vms",
            Assert.Throws<ConfigurationException>(() => TelemetrySettings.Create(ConfigurationFactory.ParseString("max-vms = 0"))).Message);
        Assert.Contains("orchestrator.telemetry.max-hosts",
            Assert.Throws<ConfigurationException>(() => TelemetrySettings.Create(ConfigurationFactory.ParseString("max-hosts = -5"))).Message);
    }
}
