using Akka.Configuration;
using Akka.Event;
using LogLevel = Microsoft.Extensions.Logging.LogLevel;
using Microsoft.Extensions.Logging;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Actors.Tests;

/// <summary>orchestrator.logging read once, with clear errors; Akka's events get categories that levels can name.</summary>
public sealed class LoggingSettingsTests
{
    private static LoggingSettings Read(string hocon) =>
        LoggingSettings.Create(ConfigurationFactory.ParseString(hocon).GetConfig("orchestrator.logging"), "/data");

    [Fact]
    public void Quoted_and_nested_categories_both_become_dotted_names()
    {
        var settings = Read("""
            orchestrator.logging {
              format = json
              level = warning
              levels { "Akka.Cluster" = Error, Orchestrator.Actors { Hosts = Debug } }
              file = node.log
            }
            """);
        Assert.Equal(LogFormat.Json, settings.Format);
        Assert.Equal(LogLevel.Warning, settings.Level);
        Assert.Equal(LogLevel.Error, settings.Levels["Akka.Cluster"]);
        Assert.Equal(LogLevel.Debug, settings.Levels["Orchestrator.Actors.Hosts"]);
        Assert.Equal("/data/node.log", settings.File);
    }

    [Theory]
    [InlineData("level = Information", "INFO")]
    [InlineData("level = Warning, levels { \"Orchestrator\" = Debug }", "DEBUG")]
    [InlineData("level = Error, levels { \"Akka\" = Critical }", "ERROR")]
    [InlineData("level = None", "OFF")]
    public void Akka_runs_at_the_most_verbose_configured_level(string hocon, string akka) =>
        Assert.Equal(akka, Read($"orchestrator.logging {{ {hocon} }}").AkkaLogLevel);

    [Theory]
    [InlineData("level = Loud", "orchestrator.logging.level: unknown level 'Loud'")]
    [InlineData("level = 3", "orchestrator.logging.level: unknown level '3'")]
    [InlineData("levels { \"Akka.Cluster\" = chatty }", "orchestrator.logging.levels.\"Akka.Cluster\": unknown level 'chatty'")]
    [InlineData("format = xml", "orchestrator.logging.format: unknown format 'xml' (known: text, json)")]
    public void A_bad_format_or_level_names_the_setting(string hocon, string message)
    {
        var error = Assert.Throws<ConfigurationException>(() => Read($"orchestrator.logging {{ {hocon} }}"));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void No_file_and_the_defaults_when_the_section_is_absent()
    {
        var settings = LoggingSettings.Create(null, "/data");
        Assert.Equal((LogFormat.Text, LogLevel.Information, (string?)null), (settings.Format, settings.Level, settings.File));
    }

    [Theory]
    [InlineData(typeof(Orchestrator.Actors.Hosts.VmActor), "x", "Orchestrator.Actors.Hosts.VmActor")]
    [InlineData(typeof(Dictionary<string, int>), "x", "System.Collections.Generic.Dictionary")]
    [InlineData(typeof(DummyClassForStringSources), "Cluster (akka://orchestrator)", "Akka.Cluster")]
    [InlineData(typeof(DummyClassForStringSources), "remoting-terminator", "Akka.Remote.remoting-terminator")]
    [InlineData(null, null, "Akka")]
    public void Akka_events_are_categorised_by_the_class_that_logged(Type? logClass, string? source, string category) =>
        Assert.Equal(category, MelLogger.Category(logClass, source));
}
